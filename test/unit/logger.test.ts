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
