// `npm run demo`, second half (scripts/demo.sh starts the registry and builds the image): runs the action's main
// and post steps exactly as the runner does, on Node 24 as the runner does (test/support/action-runner.ts, the same emulation the end-to-end
// tests use: INPUT_* variables, the command files, the saved state back as STATE_* variables), prints what a person
// sees in the Actions log (src/adapters/workflow-render.ts: masks as ***, groups as headings, annotations labelled), the
// outputs and the job summary, then runs the README's CLI example. It checks what it shows: exit 0, a digest, no
// workflow command and no secret in the printed text; any of these failing ends the demo with exit 1.
import { spawnSync } from 'node:child_process';
import { Job, parseCommandFile, DIST } from '../test/support/action-runner.js';
import { node24 } from '../test/support/node24.js';
import { runnerCommands } from '../test/support/runner-commands.js';
import { WorkflowLogRenderer } from '../src/adapters/workflow-render.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`demo-step: ${name} is not set (run it through npm run demo)`);
  return v;
};
const registry = env('DEMO_REGISTRY');
const token = env('DEMO_TOKEN');
const username = env('DEMO_USERNAME');
const image = env('DEMO_IMAGE');
const secrets = [token, Buffer.from(`${username}:${token}`).toString('base64')];

const printed: string[] = [];
const problems: string[] = [];
function show(text: string): void {
  printed.push(text);
  process.stdout.write(`${text}\n`);
}
function heading(title: string): void {
  show(`\n== ${title} ==`);
}

/** The step's output as the Actions log shows it; the runner knows the job's secrets before the step starts. */
function rendered(...streams: string[]): string {
  const r = new WorkflowLogRenderer();
  r.mask(token);
  return streams
    .map((s) => r.text(s))
    .filter((t) => t.trim())
    .join('\n');
}

async function actionSteps(): Promise<void> {
  const job = new Job();
  try {
    heading(`the step, as the Actions log shows it (dist/index.js, ${registry}, htpasswd auth)`);
    const run = await job.main(
      { 'app-slug': 'demo-app', image, tag: '1.0.0,latest', token, username, registry },
      { env: { GITHUB_REF: 'refs/tags/v1.0.0' } },
    );
    show(rendered(run.stdout, run.stderr));
    if (run.code !== 0) problems.push(`the main step exited ${run.code}`);
    // the post step, as the runner runs it: every value main saved comes back as STATE_<name>
    heading('the post step');
    const post = await job.post(run.state);
    show(rendered(post.stdout, post.stderr) || '(nothing to clean up: the main step removed its work directory)');
    if (post.code !== 0) problems.push(`the post step exited ${post.code}`);
    heading('outputs (steps.<id>.outputs)');
    for (const [name, value] of Object.entries(parseCommandFile(run.files.output)))
      show(`${name}: ${value.split('\n').join(' | ')}`);
    if (!/^sha256:[0-9a-f]{64}$/.test(run.outputs.digest ?? '')) problems.push('no digest output');
    heading('job summary (Markdown)');
    show(run.summary.trim() || '(empty)');
    if (!run.summary.trim()) problems.push('no job summary');
  } finally {
    job.cleanup();
  }
}

function cliExample(): void {
  const cli = DIST.replace(/index\.js$/, 'cli/index.js');
  heading('the CLI (README: "Outside GitHub Actions"): --help');
  const help = spawnSync(node24(), [cli, '--help'], { encoding: 'utf8' });
  show(help.stdout.split('\n').slice(0, 3).join('\n') + '\n  ...');
  if (help.status !== 0 || !help.stdout.includes('--app-slug')) problems.push(`the CLI's --help exited ${help.status}`);
  const args = ['--app-slug', 'demo-app', '--image', image, '--tag', '1.0.1', '--tag', 'stable'];
  heading(
    `the CLI: REPLICATED_TOKEN=*** replicated-push ${args.join(' ')} --registry ${registry} --username ${username}`,
  );
  const push = spawnSync(node24(), [cli, ...args, '--registry', registry, '--username', username], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: process.env.HOME, REPLICATED_TOKEN: token },
    timeout: 120_000,
  });
  // the CLI logs to stderr and writes its outputs to stdout (name=value)
  show(rendered(push.stderr, push.stdout));
  if (push.status !== 0) problems.push(`the CLI exited ${push.status}`);
}

await actionSteps();
cliExample();
// The checks of what a newcomer was just shown: never a secret, never the raw protocol.
const all = printed.join('\n');
for (const s of secrets) if (all.includes(s)) problems.push('a secret was printed');
// by the runner's own rules (a `::` line after white space, `##[` anywhere, CR as a line end)
const raw = runnerCommands(all);
if (raw.length) problems.push(`${raw.length} workflow command(s) printed raw, e.g. ${raw[0].line.slice(0, 40)}`);
if (problems.length) {
  process.stderr.write(`\ndemo FAILED: ${problems.join('; ')}\n`);
  process.exit(1);
}
