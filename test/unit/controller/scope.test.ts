// Which namespaces' claims Cascade allocates: those the scheduling gate covers.
import { GateScope, selectorMatches } from '../../../pkg/controller/ownership.js';

describe('label selectors as the API server reads them', () => {
  it.each([
    ['an absent selector selects everything', undefined, { a: '1' }, true],
    ['an empty selector selects everything', {}, {}, true],
    ['matchLabels needs every label', { matchLabels: { a: '1', b: '2' } }, { a: '1' }, false],
    ['In needs the label with one of the values', { matchExpressions: [{ key: 'a', operator: 'In', values: ['1', '2'] }] }, { a: '2' }, true],
    ['In fails without the label', { matchExpressions: [{ key: 'a', operator: 'In', values: ['1'] }] }, {}, false],
    ['NotIn passes without the label', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, {}, true],
    ['NotIn fails with a listed value', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: ['1'] }] }, { a: '1' }, false],
    ['Exists', { matchExpressions: [{ key: 'a', operator: 'Exists' }] }, { a: '' }, true],
    ['DoesNotExist', { matchExpressions: [{ key: 'a', operator: 'DoesNotExist' }] }, { a: '' }, false],
    ['an unknown operator selects nothing', { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] }, { a: '2' }, false],
  ])('%s', (_name, sel, labels, want) => {
    expect(selectorMatches(sel, labels)).toBe(want);
  });
});

describe('the gate scope', () => {
  const manifest = {
    metadata: { name: 'cascade-scheduling-gate' },
    webhooks: [
      { name: 'scheduling-gate.gpu.cascade.dev', namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'cascade-system'] }] } },
    ],
  };

  it('leaves namespaces a selector excludes to the kube-scheduler', () => {
    const scope = GateScope.fromWebhookConfig(manifest, 'cascade-scheduling-gate');
    expect(scope.covers('kube-system', {})).toBe(false);
    expect(scope.covers('cascade-system', undefined)).toBe(false);
    expect(scope.covers('team-a', { team: 'a' })).toBe(true);
    expect(scope.outside('kube-system')).toMatch(/^namespace kube-system is outside the namespaceSelector of MutatingWebhookConfiguration cascade-scheduling-gate/);
  });

  it('covers a namespace when any webhook of the configuration selects it', () => {
    const scope = GateScope.fromWebhookConfig(
      {
        metadata: {},
        webhooks: [
          { name: 'a', namespaceSelector: { matchLabels: { gpu: 'yes' } } },
          { name: 'b', namespaceSelector: { matchLabels: { tier: 'ml' } } },
        ],
      },
      'g',
    );
    expect(scope.covers('x', { tier: 'ml' })).toBe(true);
    expect(scope.covers('y', { gpu: 'no' })).toBe(false);
  });

  it('covers nothing while the configuration does not exist, because then no pod is gated', () => {
    const scope = GateScope.fromWebhookConfig(undefined, 'cascade-scheduling-gate');
    expect(scope.covers('default', {})).toBe(false);
    expect(scope.outside('default')).toContain('does not exist');
  });

  it('covers every namespace, kube-system too, with the shipped webhook (no namespaceSelector)', () => {
    const scope = GateScope.fromWebhookConfig({ metadata: { name: 'cascade-scheduling-gate' }, webhooks: [{ name: 'scheduling-gate.gpu.cascade.dev' }] }, 'cascade-scheduling-gate');
    expect(scope.covers('kube-system', {})).toBe(true);
    expect(scope.covers('team-a', { team: 'a' })).toBe(true);
  });

  it('covers everything when the gate is switched off', () => {
    expect(GateScope.everywhere().covers('kube-system', {})).toBe(true);
  });
});
