// src/adapters/workflow-render.ts: what a person sees of a step's output in the Actions log. Commands are written by
// @actions/core itself (the runner's other side), so the renderer is checked against the real protocol, not against
// its own idea of it.
import * as core from '@actions/core';
import { annotationText, groupHeading, parseCommand, WorkflowLogRenderer } from '../../src/adapters/workflow-render.js';
import { stdoutOf } from '../../test/support/stdout.js';

const saved = { ...process.env };
beforeEach(() => {
  // @actions/core writes commands to stdout only when it has no command files
  delete process.env.GITHUB_OUTPUT;
  delete process.env.GITHUB_STATE;
});
afterAll(() => {
  process.env = saved;
});

describe('commands written by @actions/core, as the log shows them', () => {
  test.each([
    ['info', () => core.info('plain line'), ['plain line']],
    [
      'warning with a title',
      () => core.warning('two\nlines, 100%: done', { title: 'T: a, b' }),
      ['Warning: T: a, b: two\nlines, 100%: done'],
    ],
    ['error without a title', () => core.error('broke'), ['Error: broke']],
    ['notice', () => core.notice('fyi', { title: 'N' }), ['Notice: N: fyi']],
    ['debug is hidden', () => core.debug('internal'), []],
    ['group and endgroup', () => core.group('Push x', async () => core.info('inside')), ['▸ Push x', 'inside']],
    ['state and outputs are not shown', () => (core.saveState('workDir', '/tmp/x'), core.setOutput('digest', 'd')), []],
  ])('%s', async (_, fn, shown) => {
    const r = new WorkflowLogRenderer();
    const out = await stdoutOf(fn);
    expect(r.text(out).split('\n').filter(Boolean)).toEqual(shown.flatMap((s) => s.split('\n')));
  });

  test('a masked value is *** from the mask on, in plain lines, annotations and group names', async () => {
    const r = new WorkflowLogRenderer();
    const out = await stdoutOf(async () => {
      core.info('before: s3cr3t');
      core.setSecret('s3cr3t');
      core.info('after: s3cr3t and again s3cr3t');
      core.warning('in a warning: s3cr3t', { title: 'title s3cr3t' });
      await core.group('group s3cr3t', async () => undefined);
    });
    expect(r.text(out).split('\n')).toEqual([
      'before: s3cr3t',
      'after: *** and again ***',
      'Warning: title ***: in a warning: ***',
      '▸ group ***',
      '',
    ]);
  });

  test('a mask with % and newlines is unescaped, and each line of it masked', async () => {
    const r = new WorkflowLogRenderer();
    const out = await stdoutOf(() => {
      core.setSecret('line1-100%\nline2');
      core.info('x line1-100% y line2 z');
    });
    expect(r.text(out)).toBe('x *** y *** z\n');
  });

  test('the longest mask first: a secret inside another leaves no fragment', () => {
    const r = new WorkflowLogRenderer();
    r.mask('abc');
    r.mask('xxabcxx');
    expect(r.line('xxabcxx abc')).toBe('*** ***');
  });

  test('the debug view shows debug lines, labelled', async () => {
    const r = new WorkflowLogRenderer({ debug: true });
    expect(r.text(await stdoutOf(() => core.debug('internal')))).toBe('Debug: internal\n');
  });
});

describe('stop-commands', () => {
  test('lines between ::stop-commands::TOKEN and ::TOKEN:: are shown as they are, commands included', () => {
    const r = new WorkflowLogRenderer();
    const lines = [
      '::stop-commands::tok123',
      '::error title=x::not a command',
      '::add-mask::nope',
      '::tok123::',
      '::error::now one',
    ];
    expect(lines.map((l) => r.line(l))).toEqual([
      null,
      '::error title=x::not a command',
      '::add-mask::nope',
      null,
      'Error: now one',
    ]);
    // the add-mask inside the stopped section registered nothing
    expect(r.line('nope')).toBe('nope');
  });

  test('masks still apply inside a stopped section', () => {
    const r = new WorkflowLogRenderer();
    r.mask('pw');
    expect(['::stop-commands::t', 'the pw', '::t::'].map((l) => r.line(l))).toEqual([null, 'the ***', null]);
  });
});

describe('parseCommand', () => {
  test.each([
    ['::warning title=a%3A b%2C c::m%0An', { name: 'warning', props: { title: 'a: b, c' }, value: 'm\nn' }],
    ['::endgroup::', { name: 'endgroup', props: {}, value: '' }],
    ['::add-mask::::colons::', { name: 'add-mask', props: {}, value: '::colons::' }],
    ['  ::error::after white space', { name: 'error', props: {}, value: 'after white space' }],
    ['text ##[warning]legacy form', { name: 'warning', props: {}, value: 'legacy form' }],
    ['##[group]Legacy group', { name: 'group', props: {}, value: 'Legacy group' }],
  ])('%s', (line, expected) => expect(parseCommand(line)).toEqual(expected));

  test.each(['plain', ':: not a command', ':single:colon', 'x ::not at the start::x'])('not a command: %s', (line) =>
    expect(parseCommand(line)).toBeNull(),
  );

  test('a CR ends a line, as it does for the runner: a command after it is one', () => {
    expect(new WorkflowLogRenderer().text('text\r::error::injected')).toBe('text\nError: injected');
  });

  test('an unknown command is shown as it is', () => {
    expect(new WorkflowLogRenderer().line('::frobnicate::x')).toBe('::frobnicate::x');
  });
});

test('the labels the CLI shares', () => {
  expect(annotationText('warning', 'Big layer', 'split it')).toBe('Warning: Big layer: split it');
  expect(annotationText('notice', undefined, 'fyi')).toBe('Notice: fyi');
  expect(groupHeading('Verify')).toBe('▸ Verify');
});
