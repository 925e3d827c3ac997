// Text the action did not write is data: docker's output and stderr, a registry's error codes and messages, what an
// image holds (file names, history, labels), the names an engine reports. These are the only functions that turn
// such text into something the action shows, so it can never become a workflow command, a log line of its own,
// terminal escapes or Markdown. The user's own input, quoted in an input error, is checked and escaped here too
// (controlCharacterAt, printable). Pure.
//
// The runner reads a command from any line of stdout or stderr that starts with `::` after leading white space
// (ActionCommand.TryParseV2), and from `##[` anywhere in a line (the legacy TryParse): both are defused here.

/** What one quoted fragment may take of a line: a file name, an error code, one docker line. */
export const FRAGMENT_MAX = 512;

// C0 (CR, LF, ESC, ...), DEL, C1 (NEL included), the Unicode line and paragraph separators, and the invisible
// direction and zero-width marks that could make a log line read differently from what it holds.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff]/g;

const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\x1b': '\\e' };

/** `\n`, `\r`, `\t`, `\e`, else `\xHH` or `\u{HHHH}`: the character is seen, not obeyed. */
function visible(ch: string): string {
  const code = ch.charCodeAt(0);
  return NAMED[ch] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`);
}

/** No `::` command at the start of the line, no legacy `##[` command anywhere in it. */
function defuse(line: string): string {
  return line.replace(/##\[/g, '##\\[').replace(/^(\s*)::/, '$1\\::');
}

/**
 * A foreign string as part of one log line: control characters shown as escapes, never a command, at most `max`
 * characters (cut with `…`). Work is bounded before escaping: a registry body can be a megabyte.
 */
export function logText(text: unknown, max = FRAGMENT_MAX): string {
  const s = typeof text === 'string' ? text : String(text ?? '');
  const head = s.length > max * 2 ? s.slice(0, max * 2) : s;
  const out = defuse(head.replace(CONTROL, visible));
  return out.length > max || head.length < s.length ? `${out.slice(0, Math.max(0, max - 1))}…` : out;
}

/**
 * The adapters' last line of defence for what the core logs: each line of a message (the action's own may have
 * several) has its control characters shown and no command in it. Foreign text was already made one-line where it
 * entered the message; this only guarantees that a place that forgot cannot write a command.
 */
export function inertLines(message: string): string {
  return message
    .split(/\r\n|\r|\n/)
    .map((line) => defuse(line.replace(CONTROL, visible)))
    .join('\n');
}

// Inline Markdown (GFM): emphasis, code, links and images, HTML and entities, strikethrough, table cells, math,
// mentions, headings' `#`; autolinks need `://` or `www.`. `>` only opens a quote at the start of a line, as `-`,
// `+` and `=` open a list or underline a heading, and `1.` numbers a list.
const MD_INLINE = /[\\`*_[\]<#!|~$@&]|:(?=\/\/)/g;
const MD_LINE_START = /^(\s*)([->+=]|\d+(?=[.)]))/;

/**
 * A string as Markdown text that renders as itself: one line (as logText), every character that could start
 * Markdown backslash-escaped (CommonMark allows it for any ASCII punctuation), so nothing in it is emphasis, code,
 * a link, an autolink, HTML, a heading, a quote, a list, a table cell break or math.
 */
export function mdText(text: unknown, max = FRAGMENT_MAX): string {
  return logText(text, max)
    .replace(MD_INLINE, '\\$&')
    .replace(/\bwww\./gi, (w) => `${w.slice(0, 3)}\\.`)
    .replace(
      MD_LINE_START,
      (_m, space: string, mark: string) => `${space}${/\d/.test(mark) ? `${mark}\\` : `\\${mark}`}`,
    );
}

/**
 * A string as a Markdown code span (nothing inside is interpreted): one line (as logText), a fence longer than any
 * run of backticks in it, padded with a space (which CommonMark strips) when it starts or ends with one.
 */
export function mdCode(text: unknown, max = FRAGMENT_MAX): string {
  const s = logText(text, max);
  if (!s) return '` `';
  const fence = '`'.repeat(Math.max(0, ...(s.match(/`+/g) ?? []).map((r) => r.length)) + 1);
  const pad = /^`|`$/.test(s) || (s.startsWith(' ') && s.endsWith(' ')) ? ' ' : '';
  return `${fence}${pad}${s}${pad}${fence}`;
}

/** A code span in a GFM table cell: `|` would end the cell even inside the span, so it is escaped there too. */
export function mdCell(text: unknown, max = FRAGMENT_MAX): string {
  return mdCode(text, max).replace(/\|/g, '\\|');
}

// The user's own input (the git ref, a CLI argument) is quoted in the input errors with these, not with logText:
// they check and escape C0, DEL and C1 only, as the runner's line ends and a terminal's escapes need, and show
// each as \uHHHH (the form the input errors give). Foreign text from a registry, docker or an image takes logText.
const isControl = (c: number): boolean => c < 0x20 || (c >= 0x7f && c <= 0x9f);

/** First control character (C0, DEL, C1) in `text`, newlines excepted when `newlines` is true; -1 when none. */
export function controlCharacterAt(text: string, newlines = false): number {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (newlines && (c === 0x0a || c === 0x0d)) continue;
    if (isControl(c)) return i;
  }
  return -1;
}

const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` safe to print on one log line: control characters become \n, \u001b and the like. A newline followed by
 * `::warning::` would otherwise become a workflow command, an escape sequence would drive the terminal.
 */
export function printable(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    out += isControl(c) ? (SHORT_ESCAPES[ch] ?? `\\u${c.toString(16).padStart(4, '0')}`) : ch;
  }
  return out;
}

/** The end of what a child process printed (docker, zstd), quoted in an error: its last lines, each as logText. */
export function outputTail(text: string, lines = 3, separator = ' '): string {
  return text
    .trim()
    .split(/\r\n|\r|\n/)
    .slice(-lines)
    .map((l) => logText(l.trim()))
    .filter(Boolean)
    .join(separator);
}
