// Keeps the README's input and output tables equal to action.yml: `node scripts/docs.mjs` rewrites them,
// `--check` fails when they differ (run in CI, so the docs never drift from the action). action.yml's inputs in turn
// equal the table of inputs in src/core/input-table.ts (INPUTS), which __tests__/unit/action-yml.test.ts checks.
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';

const action = parse(readFileSync('action.yml', 'utf8'));
const esc = (s) =>
  String(s ?? '')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ')
    .trim();
const inputs = Object.entries(action.inputs).map(
  ([name, i]) =>
    `| \`${name}\` | ${i.required ? 'yes' : 'no'} | ${i.default === undefined || i.default === '' ? '' : `\`${esc(i.default)}\``} | ${esc(i.description)} |`,
);
const outputs = Object.entries(action.outputs).map(([name, o]) => `| \`${name}\` | ${esc(o.description)} |`);
const block = [
  '<!-- inputs:start (generated from action.yml by scripts/docs.mjs) -->',
  '| input | required | default | description |',
  '| --- | --- | --- | --- |',
  ...inputs,
  '',
  '| output | description |',
  '| --- | --- |',
  ...outputs,
  '<!-- inputs:end -->',
].join('\n');

const readme = readFileSync('README.md', 'utf8');
const re = /<!-- inputs:start[^>]*-->[\s\S]*?<!-- inputs:end -->/;
if (!re.test(readme)) {
  console.error('README.md has no <!-- inputs:start --> ... <!-- inputs:end --> block');
  process.exit(1);
}
const next = readme.replace(re, block);
if (process.argv.includes('--check')) {
  if (next !== readme) {
    console.error('README.md input/output tables differ from action.yml: run `node scripts/docs.mjs`');
    process.exit(1);
  }
  console.log('README tables match action.yml');
} else {
  writeFileSync('README.md', next);
}
