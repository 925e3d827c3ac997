import { DEFAULT_TOKEN_ENV, parseCliArgs, usage, UsageError, type Env } from '../../src/adapters/cli-args.js';
import { INPUTS, type InputSpec } from '../../src/core/input-table.js';
import { readConfig, readConfigs } from '../../src/core/inputs.js';
import { controlCharacterAt } from '../../src/util/untrusted.js';

const ENV: Env = { REPLICATED_TOKEN: 's3cret', OTHER_TOKEN: 'other' };

/** Every input the getter gives, by name ('' left out). */
function inputs(argv: string[], env: Env = ENV): Record<string, string> {
  const { get } = parseCliArgs(argv, env);
  const out: Record<string, string> = {};
  for (const i of INPUTS) if (get(i.name) !== '') out[i.name] = get(i.name);
  return out;
}

function usageError(argv: string[], env: Env = ENV): UsageError {
  try {
    parseCliArgs(argv, env);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return e as UsageError;
  }
  throw new Error(`parseCliArgs accepted ${JSON.stringify(argv)}`);
}

describe('parseCliArgs: argv -> the action getter', () => {
  test.each<[string, string[], Env, Record<string, string>]>([
    ['nothing: only the token', [], ENV, { token: 's3cret' }],
    ['no token in the environment', [], {}, {}],
    [
      'the usual flags',
      ['--app-slug', 'my-app', '--image', 'app/x:1', '--tag', '1.0.0'],
      ENV,
      { 'app-slug': 'my-app', image: 'app/x:1', tag: '1.0.0', token: 's3cret' },
    ],
    [
      '--name=value form',
      ['--app-slug=my-app', '--registry=ghcr.io'],
      ENV,
      { 'app-slug': 'my-app', registry: 'ghcr.io', token: 's3cret' },
    ],
    [
      'tag repeats and joins with commas',
      ['--tag', '1.0.0', '--tag', 'latest'],
      ENV,
      { tag: '1.0.0,latest', token: 's3cret' },
    ],
    ['a comma list in one tag flag', ['--tag', '1.0.0,latest'], ENV, { tag: '1.0.0,latest', token: 's3cret' }],
    ['--dry-run is a flag', ['--dry-run'], ENV, { 'dry-run': 'true', token: 's3cret' }],
    ['--token-env names the variable', ['--token-env', 'OTHER_TOKEN'], ENV, { token: 'other' }],
    ['--token-env to an unset variable', ['--token-env', 'UNSET_TOKEN'], ENV, {}],
    [
      'every value flag of the table',
      INPUTS.filter((i) => i.cli.kind === 'value').flatMap((i) => [`--${i.name}`, `v-${i.name}`]),
      {},
      Object.fromEntries(INPUTS.filter((i) => i.cli.kind === 'value').map((i) => [i.name, `v-${i.name}`])),
    ],
    ['an empty value', ['--username', ''], ENV, { token: 's3cret' }],
    ['a value that looks like a flag, with =', ['--username=--x'], ENV, { username: '--x', token: 's3cret' }],
  ])('%s', (_what, argv, env, expected) => {
    expect(inputs(argv, env)).toEqual(expected);
  });

  test.each<[string[], string, boolean]>([
    [[], DEFAULT_TOKEN_ENV, false],
    [['--help'], DEFAULT_TOKEN_ENV, true],
    [['-h'], DEFAULT_TOKEN_ENV, true],
    [['--token-env', 'CI_TOKEN', '-h'], 'CI_TOKEN', true],
  ])('%j -> tokenEnv %s, help %s', (argv, tokenEnv, help) => {
    const args = parseCliArgs(argv, ENV);
    expect(args.tokenEnv).toBe(tokenEnv);
    expect(args.help).toBe(help);
  });

  test('source-token comes from $REPLICATED_SOURCE_TOKEN, never from the token variable', () => {
    expect(parseCliArgs([], ENV).get('source-token')).toBe('');
    expect(parseCliArgs([], { ...ENV, REPLICATED_SOURCE_TOKEN: 'ghp_x' }).get('source-token')).toBe('ghp_x');
    expect(parseCliArgs([], { ...ENV, REPLICATED_SOURCE_TOKEN: 'ghp_x' }).get('token')).toBe('s3cret');
  });

  test('names that are not inputs give empty text', () => {
    expect(parseCliArgs(['--app-slug', 'a'], ENV).get('no-such-input')).toBe('');
  });

  test('the getter feeds readConfig as the action does', () => {
    const { get } = parseCliArgs(
      ['--app-slug', 'my-app', '--image', 'app/worker:dev', '--tag', '1.0.0', '--tag', 'latest', '--dry-run'],
      ENV,
    );
    const c = readConfig(get, { ref: '' });
    expect(c.tags).toEqual(['1.0.0', 'latest']);
    expect(c.dryRun).toBe(true);
    expect(c.token).toBe('s3cret');
    expect(c.registry).toBe('registry.replicated.com');
  });
});

describe('parseCliArgs: bad usage', () => {
  test.each<[string[], RegExp]>([
    [['--token', 'secret'], /^--token: the token is never a flag \(flags end up in shell history/],
    [['--token=secret'], /the token is never a flag/],
    [
      ['--source-token', 'x'],
      /^--source-token: the source-token is never a flag .*: put it in \$REPLICATED_SOURCE_TOKEN$/,
    ],
    [['--app-slug', 'a', '--token'], /the token is never a flag/],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
    [['positional'], /Unexpected argument 'positional'/],
    [['--image'], /Option '--image <value>' argument missing/],
    [['--dry-run=true'], /Option '--dry-run' does not take an argument/],
    [['--target-image', 'a', '--target-image', 'b'], /^--target-image given 2 times; it takes one value$/],
    [['--token-env', 'A', '--token-env', 'B'], /^--token-env given 2 times/],
    [['--token-env', 'MY-TOKEN'], /^--token-env: "MY-TOKEN" is not an environment variable name$/],
    [['--token-env', ''], /is not an environment variable name/],
    [['--token-env', '1TOKEN'], /is not an environment variable name/],
  ])('%j -> %s', (argv, message) => {
    expect(usageError(argv).message).toMatch(message);
  });

  test.each([[['--x\n::warning::owned']], [['--token-env', 'A\n::warning::owned']], [['\u001b[2Jpositional']]])(
    '%j: the message quotes the argument escaped, on one line',
    (argv) => {
      const message = usageError(argv).message;
      expect(controlCharacterAt(message)).toBe(-1);
      expect(message).toMatch(/\\n::warning::owned|\\u001b\[2J/);
    },
  );
});

describe('usage: built from the table', () => {
  const text = usage();

  test.each(INPUTS.filter((i) => i.cli.kind !== 'none').map((i) => [i.name, i.cli]))(
    '--%s is listed with its argument',
    (name, shape) => {
      const label = 'arg' in shape ? `--${name} ${shape.arg}` : `--${name}`;
      expect(text).toMatch(new RegExp(`^  ${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}  `, 'm'));
    },
  );

  test.each(
    (INPUTS as readonly InputSpec[]).filter((i) => i.default && i.cli.kind === 'value').map((i) => [i.name, i.default]),
  )('%s shows the default %j', (name, value) => {
    const block = text.slice(text.indexOf(`  --${name} `));
    expect(block.slice(0, block.indexOf('\n  --')).replace(/\s+/g, ' ')).toContain(`Default: ${value}.`);
  });

  test('the description of every input is in it, word for word', () => {
    const flat = text.replace(/\s+/g, ' ');
    for (const i of INPUTS) if (i.cli.kind !== 'none') expect(flat).toContain(i.description);
  });

  test('the token is not a flag; --token-env and --help are', () => {
    expect(text).not.toMatch(/^ {2}--token /m);
    expect(text).toMatch(/^ {2}--token-env NAME {2,}The environment variable holding the token/m);
    expect(text.replace(/\s+/g, ' ')).toContain("(the action's 'token' input). Default: REPLICATED_TOKEN.");
    expect(text).toMatch(/^ {2}-h, --help /m);
  });

  test('--image more than once: one image a line, as the action reads a YAML block', () => {
    const argv = ['--app-slug', 'a', '--tag', '1', '--image', 'api=api:1', '--image', 'web=oci:./web'];
    const args = parseCliArgs(argv, { REPLICATED_TOKEN: 't' });
    expect(args.get('image')).toBe('api=api:1\nweb=oci:./web');
    expect(readConfigs(args.get, { ref: '' }).map((c) => c.repositoryPath)).toEqual(['a/api', 'a/web']);
  });

  test.each([[80], [110]])('no line is longer than %d columns', (width) => {
    for (const line of usage(width).split('\n')) {
      // a single word longer than the room left may overflow; none of the table's are
      expect(line.length).toBeLessThanOrEqual(width);
    }
  });

  test('required inputs say so', () => {
    expect(text).toMatch(/--app-slug SLUG +Required\. Vendor Portal application slug/);
  });
});
