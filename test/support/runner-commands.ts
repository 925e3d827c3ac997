// What the GitHub runner would read as workflow commands in a step's output, by its own rules
// (actions/runner src/Runner.Common/ActionCommand.cs): a line that starts with `::` after leading white space
// (TryParseV2), or `##[` anywhere in a line (the legacy TryParse, which the runner still tries). Tests of text the
// action did not write assert on this, not on the action's own words.

export interface RunnerCommand {
  readonly form: 'v2' | 'legacy';
  readonly command: string;
  /** The properties as written (still escaped), e.g. `title=Push failed`. */
  readonly properties: string;
  readonly line: string;
}

export function runnerCommands(output: string): RunnerCommand[] {
  const found: RunnerCommand[] = [];
  // The runner reads lines as .NET's StreamReader does: CR, LF and CRLF all end one.
  for (const line of output.split(/\r\n|\r|\n/)) {
    const v2 = /^\s*::([^\s:]+)(?: ([^:]*))?::/.exec(line);
    if (v2) {
      found.push({ form: 'v2', command: v2[1], properties: v2[2] ?? '', line });
      continue;
    }
    const legacy = /##\[([^\s\]]+)(?: ([^\]]*))?\]/.exec(line);
    if (legacy) found.push({ form: 'legacy', command: legacy[1], properties: legacy[2] ?? '', line });
  }
  return found;
}
