// Runs the committed dist/ the way the GitHub runner does: INPUT_* variables, GITHUB_OUTPUT, GITHUB_STATE and
// GITHUB_STEP_SUMMARY files, then the post step with the saved state as STATE_* variables.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { node24 } from './node24.js';
import { runProcess, type ProcessResult } from './process.js';

export const DIST = resolve(process.cwd(), process.env.RP_DIST || 'dist/index.js');

export interface StepRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly outputs: Record<string, string>;
  readonly state: Record<string, string>;
  readonly summary: string;
  /** Every file the step wrote that a later step or a person could read. */
  readonly files: Record<string, string>;
}

/** Parses the GITHUB_OUTPUT / GITHUB_STATE file format (`name<<DELIM\nvalue\nDELIM`, or `name=value`). */
export function parseCommandFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([^=<]+)<<(.+)$/.exec(lines[i]);
    if (heredoc) {
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== heredoc[2]; i++) value.push(lines[i]);
      out[heredoc[1]] = value.join('\n');
    } else if (lines[i].includes('=')) {
      const at = lines[i].indexOf('=');
      out[lines[i].slice(0, at)] = lines[i].slice(at + 1);
    }
  }
  return out;
}

function runNode(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ProcessResult> {
  return runProcess(node24(), [DIST], { env, timeoutMs });
}

export interface RunOptions {
  /** Extra environment: DOCKER_HOST, GITHUB_REF, HOME... */
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
  /** A runner that sets no GITHUB_STEP_SUMMARY (older GitHub Enterprise Server, some self-hosted runners). */
  readonly noStepSummary?: boolean;
}

function inputEnv(inputs: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(inputs)) env[`INPUT_${k.toUpperCase()}`] = v;
  return env;
}

function baseEnv(runnerTemp: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'LANG', 'TZ'];
  const env: NodeJS.ProcessEnv = {};
  for (const k of keep) if (process.env[k]) env[k] = process.env[k];
  return { ...env, RUNNER_TEMP: runnerTemp, GITHUB_ACTIONS: 'true', ...extra };
}

/** A workspace for one job: its RUNNER_TEMP and command files. */
export class Job {
  readonly dir = mkdtempSync(join(tmpdir(), 'rp-job-'));
  readonly runnerTemp = join(this.dir, 'runner-temp');

  constructor() {
    mkdirSync(this.runnerTemp);
  }

  private fresh(name: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, '');
    return p;
  }

  async main(inputs: Record<string, string>, opts: RunOptions = {}): Promise<StepRun> {
    const files = { output: this.fresh('output'), state: this.fresh('state'), summary: this.fresh('summary') };
    const env: NodeJS.ProcessEnv = {
      ...baseEnv(this.runnerTemp, opts.env),
      ...inputEnv(inputs),
      GITHUB_OUTPUT: files.output,
      GITHUB_STATE: files.state,
      GITHUB_STEP_SUMMARY: files.summary,
    };
    if (opts.noStepSummary) delete env.GITHUB_STEP_SUMMARY;
    const r = await runNode(env, opts.timeoutMs ?? 240_000);
    const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
    return {
      ...r,
      outputs: parseCommandFile(read(files.output)),
      state: parseCommandFile(read(files.state)),
      summary: read(files.summary),
      files: { output: read(files.output), state: read(files.state), summary: read(files.summary) },
    };
  }

  async post(state: Record<string, string>, opts: RunOptions = {}): Promise<StepRun> {
    const env: NodeJS.ProcessEnv = { ...baseEnv(this.runnerTemp, opts.env), GITHUB_STATE: this.fresh('post-state') };
    for (const [k, v] of Object.entries(state)) env[`STATE_${k}`] = v;
    const r = await runNode(env, opts.timeoutMs ?? 30_000);
    return { ...r, outputs: {}, state: {}, summary: '', files: {} };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
