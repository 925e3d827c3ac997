// What a person sees of a step's output in the GitHub Actions log, for a terminal: the runner reads workflow commands
// (`::add-mask::`, `::group::`, `::warning title=..::`) from the step's stdout and never shows them as they are.
// Masked values become ***, groups become headings, annotations labelled lines, debug lines are hidden unless
// debugging is on, `::stop-commands::TOKEN` ... `::TOKEN::` passes lines through untouched. The demo shows the
// action's output through this, and the CLI labels its own annotations and groups the same way.

/** How the terminal shows an annotation: `Warning: TITLE: message` (GitHub shows the title above the message). */
export function annotationText(
  kind: 'error' | 'warning' | 'notice',
  title: string | undefined,
  message: string,
): string {
  const label = kind[0].toUpperCase() + kind.slice(1);
  return title ? `${label}: ${title}: ${message}` : `${label}: ${message}`;
}

/** How the terminal shows the start of a collapsible group (GitHub shows it folded, with an arrow). */
export function groupHeading(name: string): string {
  return `▸ ${name}`;
}

/** The inverse of the escaping the runner's parser undoes (workflow-commands.ts escapeData / escapeProperty). */
function unescape(s: string): string {
  return s.replace(/%(25|0D|0A|3A|2C)/g, (_, code: string) => decodeURIComponent(`%${code}`));
}

interface Command {
  readonly name: string;
  readonly props: Readonly<Record<string, string>>;
  readonly value: string;
}

/**
 * `::name k=v,k2=v2::value` after any leading white space, as the runner parses it (actions/runner ActionCommand
 * TryParseV2), or the legacy `##[name k=v;]value` anywhere in a line (TryParse); null when the line is neither.
 */
export function parseCommand(line: string): Command | null {
  const legacy = /##\[([A-Za-z0-9_-]+)(?: ([^\]]*))?\](.*)$/s.exec(line);
  const m = /^\s*::([A-Za-z0-9_-]+)(?: ([^:]*))?::(.*)$/s.exec(line) ?? legacy;
  if (!m) return null;
  const props: Record<string, string> = {};
  for (const pair of (m[2] ?? '').split(',')) {
    const at = pair.indexOf('=');
    if (at > 0) props[pair.slice(0, at).trim()] = unescape(pair.slice(at + 1));
  }
  return { name: m[1], props, value: unescape(m[3]) };
}

export interface RenderOptions {
  /** Show `::debug::` lines (GitHub shows them when the run is re-run with debug logging). */
  readonly debug?: boolean;
}

/** Renders one step's output line by line; keeps the masks and the stop-commands token across lines. */
export class WorkflowLogRenderer {
  private readonly masks = new Set<string>();
  private stopToken: string | null = null;

  constructor(private readonly opts: RenderOptions = {}) {}

  /** A value to show as *** from now on (a secret the caller knows of, as the runner knows the job's secrets). */
  mask(value: string): void {
    // Each line of a multi-line secret is masked on its own, as the runner does.
    for (const part of value.split(/\r?\n/)) if (part.trim()) this.masks.add(part);
  }

  /** Every masked value replaced with ***, the longest first so a secret inside another goes too. */
  redact(text: string): string {
    let out = text;
    for (const m of [...this.masks].sort((a, b) => b.length - a.length)) out = out.split(m).join('***');
    return out;
  }

  /** The line as the log shows it, or null when the runner shows nothing for it. */
  line(raw: string): string | null {
    if (this.stopToken !== null) {
      if (raw !== `::${this.stopToken}::`) return this.redact(raw);
      this.stopToken = null;
      return null;
    }
    const cmd = parseCommand(raw);
    if (!cmd) return this.redact(raw);
    return this.command(cmd, raw);
  }

  private command(cmd: Command, raw: string): string | null {
    switch (cmd.name) {
      case 'add-mask':
        this.mask(cmd.value);
        return null;
      case 'stop-commands':
        this.stopToken = cmd.value;
        return null;
      case 'group':
        return this.redact(groupHeading(cmd.value));
      case 'endgroup':
      case 'save-state':
      case 'set-output':
        return null;
      case 'debug':
        return this.opts.debug ? this.redact(`Debug: ${cmd.value}`) : null;
      case 'error':
      case 'warning':
      case 'notice':
        return this.redact(annotationText(cmd.name, cmd.props.title, cmd.value));
      default:
        // a command the runner does not know is shown as it is
        return this.redact(raw);
    }
  }

  /** A whole output, line by line; lines the runner hides are left out. */
  text(output: string): string {
    const shown: string[] = [];
    // the runner reads lines as .NET's StreamReader does: CR, LF and CRLF each end one
    for (const raw of output.split(/\r\n|\r|\n/)) {
      const line = this.line(raw);
      if (line !== null) shown.push(line);
    }
    return shown.join('\n');
  }
}
