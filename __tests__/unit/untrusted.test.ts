// src/util/untrusted.ts: text the action did not write (docker's lines, a registry's codes, file names in a layer) as a
// log line fragment, as the adapters' last line of defence, and as Markdown. What "a command" is comes from the
// runner's own rules (test/support/runner-commands.ts), not from this module.
import { inertLines, logText, mdCell, mdCode, mdText, outputTail } from '../../src/util/untrusted.js';
import { runnerCommands } from '../../test/support/runner-commands.js';

describe('logText', () => {
  test.each<[string, string, number | undefined, string]>([
    ['plain text is kept', 'HTTP 400 DIGEST_INVALID', undefined, 'HTTP 400 DIGEST_INVALID'],
    ['a newline is shown', 'x\n::error title=pwned::owned', undefined, 'x\\n::error title=pwned::owned'],
    ['CR and CRLF are shown', 'a\r::warning::w\r\nb', undefined, 'a\\r::warning::w\\r\\nb'],
    ['a command at the start is defused', '::error title=pwned::owned', undefined, '\\::error title=pwned::owned'],
    ['after white space too (the runner trims)', '  \t::add-mask::x', undefined, '  \\t::add-mask::x'],
    ['after spaces alone', '   ::group::x', undefined, '   \\::group::x'],
    ['a legacy command anywhere', 'ok ##[error]legacy ##[warning]w', undefined, 'ok ##\\[error]legacy ##\\[warning]w'],
    ['###[ does not leave a ##[', '###[x]', undefined, '###\\[x]'],
    ['ESC sequences are shown', '\x1b[31mred\x1b[0m', undefined, '\\e[31mred\\e[0m'],
    ['other C0, DEL and C1', 'a\x00b\x07c\x7fd\x85e', undefined, 'a\\x00b\\x07c\\x7fd\\x85e'],
    [
      'line/paragraph separators and bidi marks',
      'a\u2028b\u2029c\u202ed\u2066e',
      undefined,
      'a\\u{2028}b\\u{2029}c\\u{202e}d\\u{2066}e',
    ],
    ['zero-width and BOM', 'a\u200bb\ufeffc', undefined, 'a\\u{200b}b\\u{feff}c'],
    ['unicode text is kept', 'ünïcode ✓ 日本', undefined, 'ünïcode ✓ 日本'],
    ['capped with an ellipsis', 'abcdefghij', 5, 'abcd…'],
    ['capped after escaping', '\n\n\n\n', 5, '\\n\\n…'],
    ['exactly the cap is kept', 'abcde', 5, 'abcde'],
    ['a huge string is bounded', 'A'.repeat(5_000_000), 10, `${'A'.repeat(9)}…`],
    ['the empty string', '', undefined, ''],
  ])('%s', (_name, input, max, expected) => {
    expect(logText(input, max)).toBe(expected);
  });

  test.each([
    [null, ''],
    [undefined, ''],
    [42, '42'],
    [{}, '[object Object]'],
  ])('%p as a string', (input, expected) => {
    expect(logText(input)).toBe(expected);
  });

  test.each([
    'x\n::error::a',
    '::set-output name=x::y',
    '\r\n  ::stop-commands::t',
    'a ##[group]b',
    '\u2028::error::x',
  ])('the runner reads no command in %j, and it is one line', (input) => {
    const out = logText(input);
    expect(runnerCommands(out)).toEqual([]);
    expect(out.split(/\r\n|\r|\n/)).toHaveLength(1);
    // idempotent: quoting a message that already holds a quoted fragment changes nothing
    expect(logText(out)).toBe(out);
  });
});

describe('inertLines (the adapters)', () => {
  test.each<[string, string, string]>([
    [
      "the action's own lines are kept",
      'layer-split: auto\n  layer 2 -> 3 layers',
      'layer-split: auto\n  layer 2 -> 3 layers',
    ],
    ['a command on a later line is defused', 'ok\n::error title=pwned::x', 'ok\n\\::error title=pwned::x'],
    ['a lone CR ends a line for the runner', 'ok\r::error::x', 'ok\n\\::error::x'],
    ['legacy commands and ESC', 'a ##[error]b \x1b[2K', 'a ##\\[error]b \\e[2K'],
  ])('%s', (_name, input, expected) => {
    expect(inertLines(input)).toBe(expected);
    expect(runnerCommands(inertLines(input))).toEqual([]);
  });
});

describe('outputTail', () => {
  test.each<[string, string]>([
    ['one\ntwo\nthree\nfour\n', 'two three four'],
    ['denied: x\r\n::error title=pwned::y\n', 'denied: x \\::error title=pwned::y'],
    ['\n\n  \n', ''],
  ])('%j', (input, expected) => {
    expect(outputTail(input)).toBe(expected);
  });
});

describe('Markdown', () => {
  test.each<[string, string]>([
    ['plain words. and: colons', 'plain words. and: colons'],
    ['**bold** _em_ `code` ~~s~~', '\\*\\*bold\\*\\* \\_em\\_ \\`code\\` \\~\\~s\\~\\~'],
    ['[l](http://evil.example) ![i](x)', '\\[l\\](http\\://evil.example) \\!\\[i\\](x)'],
    ['see www.evil.example', 'see www\\.evil.example'],
    ['<img src=x onerror=alert(1)> &amp;', '\\<img src=x onerror=alert(1)> \\&amp;'],
    ['a | b', 'a \\| b'],
    ['# heading', '\\# heading'],
    ['> quote', '\\> quote'],
    ['- item', '\\- item'],
    ['+ item', '\\+ item'],
    ['12. item', '12\\. item'],
    ['1) item', '1\\) item'],
    ['$x$ @user', '\\$x\\$ \\@user'],
    ['a\\b', 'a\\\\b'],
    ['x\n# two lines', 'x\\\\n\\# two lines'],
    ['::error::x', '\\\\::error::x'],
  ])('mdText(%j)', (input, expected) => {
    expect(mdText(input)).toBe(expected);
  });

  test.each<[string, string]>([
    ['sha256:abc', '`sha256:abc`'],
    ['a`b', '``a`b``'],
    ['``x', '``` ``x ```'],
    ['x`', '`` x` ``'],
    [' both ', '`  both  `'],
    ['two\nlines', '`two\\nlines`'],
    ['', '` `'],
  ])('mdCode(%j)', (input, expected) => {
    expect(mdCode(input)).toBe(expected);
  });

  test('mdCell escapes the pipe that would end a table cell', () => {
    expect(mdCell('a|b')).toBe('`a\\|b`');
  });
});
