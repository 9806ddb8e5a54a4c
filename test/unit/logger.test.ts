import { errorMessage } from '../../pkg/log/logger.js';

describe('errorMessage', () => {
  it.each([
    ['an Error gives its message', new Error('boom'), 'boom'],
    ['a string is kept', 'plain', 'plain'],
    ['an object is rendered as JSON', { code: 409 }, '{"code":409}'],
  ])('%s', (_name, input, want) => {
    expect(errorMessage(input)).toBe(want);
  });
});

describe('errorMessage on network errors', () => {
  it('names the errno code when the message is empty', () => {
    const err = Object.assign(new Error(''), { code: 'ECONNRESET' });
    expect(errorMessage(err)).toBe('Error: ECONNRESET');
  });
  it('joins the inner errors of an AggregateError', () => {
    const inner = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(errorMessage(new AggregateError([inner], ''))).toBe('connect ECONNREFUSED 127.0.0.1:1');
  });
});
