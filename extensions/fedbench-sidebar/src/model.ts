/**
 * The Federation sidebar's state and the rules that change it, as plain functions of plain data.
 *
 * Nothing here touches the DOM or JupyterLab: the panel (panel.ts) renders a state and the plugin
 * (index.ts) feeds it the server's answers, so every rule is unit-tested by jest on its own.
 */

/** One peer of our node, as `GET /fedbench/status` reports it (pinged live over mutual TLS). */
export interface IPeer {
  party: string;
  address: string;
  reachable: boolean;
  latency_ms: number | null;
  version: string | null;
  error: string | null;
}

/** A Voila dashboard under the server's root, with the URL that renders it. */
export interface IDashboard {
  name: string;
  path: string;
  url: string;
}

/** `GET /fedbench/status`: which node this server works with, its health and its peers. */
export interface IStatus {
  mode: string;
  home: string;
  party: string | null;
  node: { state: string; ok: boolean; error: string | null; version?: string };
  peers: IPeer[];
  dashboards: IDashboard[];
}

/** The node user the server acts as. */
export interface IUser {
  name: string;
  role: string;
  can_answer: boolean;
}

/** One project as the sidebar shows it (terms and caveats already in plain words). */
export interface IProject {
  name: string;
  state: string;
  initiator: string;
  purpose: string;
  partners: string[];
  accepted_by: string[];
  uses: string[];
  terms: string[];
  caveats: string[];
  asks: Record<string, string>;
  datasets: Record<string, { name: string; n_rows: number | null }[]>;
  can_answer: boolean;
  created_at: string | null;
}

/** `GET /fedbench/projects`. */
export interface IProjectsAnswer {
  party: string;
  user: IUser;
  projects: IProject[];
  datasets: { name: string; n_rows: number }[];
}

/** One step of a run on our party. */
export interface IStep {
  step: string;
  component: string;
  state: string;
  progress: number;
  message: string;
  error: string | null;
}

/** An output of a run our node holds; `step` is named when `run.output(name)` alone would read another step's. */
export interface IRunOutput {
  name: string;
  step: string | null;
}

/** One run of a project. */
export interface IRun {
  job_id: string;
  name: string;
  state: string;
  error: string | null;
  progress: number;
  initiator: string;
  created_at: string | null;
  duration: string | null;
  reused: string[];
  steps: IStep[];
  outputs: IRunOutput[];
  warnings: string[];
}

/** `GET /fedbench/projects/<name>/runs`. */
export interface IRunsAnswer {
  project: string;
  runs: IRun[];
}

/** Everything the panel shows. */
export interface ISidebarState {
  status: IStatus | null;
  projects: IProjectsAnswer | null;
  /** The project whose runs are shown. */
  selected: string | null;
  /** The runs of the selected project, newest first. */
  runs: IRun[];
  /** Our datasets ticked for each pending proposal under review. */
  chosen: Record<string, string[]>;
  /** The last error to show (a refused accept, the server unreachable), or null. */
  error: string | null;
}

/** States a run does not leave. */
export const FINISHED = ['succeeded', 'failed', 'cancelled'];

/** How often to poll while something runs, and otherwise (milliseconds). */
export const FAST_POLL = 1000;
export const SLOW_POLL = 3000;

/** The state of a panel that has heard nothing yet. */
export function initialState(): ISidebarState {
  return {
    status: null,
    projects: null,
    selected: null,
    runs: [],
    chosen: {},
    error: null
  };
}

/** The state once the server reported the node's status. */
export function withStatus(state: ISidebarState, status: IStatus): ISidebarState {
  return { ...state, status };
}

/**
 * The state once the projects arrived: the selection is kept while its project exists, else the first
 * active project is selected (else none), and the runs are dropped when the selection changed.
 */
export function withProjects(
  state: ISidebarState,
  answer: IProjectsAnswer
): ISidebarState {
  const names = answer.projects.map(p => p.name);
  let selected = state.selected;
  if (selected === null || !names.includes(selected)) {
    const active = answer.projects.find(p => p.state === 'active');
    selected = active ? active.name : null;
  }
  const pending = new Set(
    answer.projects.filter(p => p.state === 'pending').map(p => p.name)
  );
  const chosen: Record<string, string[]> = {};
  for (const [name, datasets] of Object.entries(state.chosen)) {
    if (pending.has(name)) {
      chosen[name] = datasets;
    }
  }
  return {
    ...state,
    projects: answer,
    selected,
    chosen,
    runs: selected === state.selected ? state.runs : []
  };
}

/** The state once the runs of `answer.project` arrived (ignored if another project is selected now). */
export function withRuns(state: ISidebarState, answer: IRunsAnswer): ISidebarState {
  if (answer.project !== state.selected) {
    return state;
  }
  return { ...state, runs: answer.runs };
}

/** The state with project `name` selected (its runs are read next). */
export function select(state: ISidebarState, name: string): ISidebarState {
  if (name === state.selected) {
    return state;
  }
  return { ...state, selected: name, runs: [] };
}

/** Tick or untick one of our datasets for the proposal `project`. */
export function choose(
  state: ISidebarState,
  project: string,
  dataset: string,
  on: boolean
): ISidebarState {
  const now = new Set(state.chosen[project] || []);
  if (on) {
    now.add(dataset);
  } else {
    now.delete(dataset);
  }
  return { ...state, chosen: { ...state.chosen, [project]: [...now].sort() } };
}

/** The state showing an error (null clears it). */
export function withError(state: ISidebarState, error: string | null): ISidebarState {
  return error === state.error ? state : { ...state, error };
}

/** How the federation is, in one word for styling and a few for people. */
export interface IHealth {
  level: 'ok' | 'degraded' | 'down' | 'unknown';
  text: string;
}

/** The node's and its peers' health in words: "guest: node up, host reachable". */
export function health(status: IStatus | null): IHealth {
  if (status === null) {
    return { level: 'unknown', text: 'asking the node…' };
  }
  const who = status.party || 'our node';
  if (!status.node.ok) {
    const why = status.node.error ? `: ${status.node.error}` : '';
    return { level: 'down', text: `${who}: node ${status.node.state}${why}` };
  }
  const lost = status.peers.filter(p => !p.reachable).map(p => p.party);
  const peers =
    status.peers.length === 0
      ? 'no peers configured'
      : lost.length === 0
        ? `${status.peers.map(p => p.party).join(', ')} reachable`
        : `${lost.join(', ')} not reachable`;
  return { level: lost.length ? 'degraded' : 'ok', text: `${who}: node up, ${peers}` };
}

/** The status bar's text: our party and each peer with a mark for its health. */
export function statusBarText(status: IStatus | null): string {
  if (status === null) {
    return 'fedbench …';
  }
  if (!status.node.ok) {
    return `fedbench ${status.party || ''} ✗ node ${status.node.state}`.replace('  ', ' ');
  }
  const peers = status.peers.map(p => `${p.party} ${p.reachable ? '✓' : '✗'}`);
  return [`fedbench ${status.party} ✓`, ...peers].join(' · ');
}

/** The selected project, or null. */
export function selectedProject(state: ISidebarState): IProject | null {
  if (state.projects === null || state.selected === null) {
    return null;
  }
  return state.projects.projects.find(p => p.name === state.selected) || null;
}

/** Whether a run is still going (queued or running). */
export function isLive(run: IRun): boolean {
  return !FINISHED.includes(run.state);
}

/** How long until the next poll: fast while a shown run is live, slow otherwise. */
export function pollDelay(state: ISidebarState): number {
  return state.runs.some(isLive) ? FAST_POLL : SLOW_POLL;
}

/** A step's state as shown: a step still waiting when its run failed or was cancelled will never run. */
export function shownStepState(run: IRun, step: IStep): string {
  const stopped = run.state === 'failed' || run.state === 'cancelled';
  return stopped && (step.state === 'queued' || step.state === 'pending') ? 'not run' : step.state;
}

/** A run in one line: its short id, name, state and duration, and which steps were reused. */
export function runLine(run: IRun): string {
  const parts = [run.job_id.slice(0, 8), run.name, run.state];
  if (run.duration) {
    parts.push(run.duration);
  }
  if (run.reused.length) {
    parts.push(`reused ${run.reused.join(', ')}`);
  }
  return parts.join(' · ');
}

/** A fraction as a whole percentage (0-100). */
export function percent(fraction: number): number {
  return Math.round(Math.max(0, Math.min(1, fraction)) * 100);
}

/** A Python string literal for `text` (JSON's double-quoted form is one). */
function pyString(text: string): string {
  return JSON.stringify(text);
}

/**
 * The code that reads output `output` of run `jobId` of project `project` in a notebook, connected to the
 * same node as this server: `project.run_by_id("...").output("...")` (with `step=` when one is needed).
 */
export function outputSnippet(
  status: IStatus | null,
  project: string,
  jobId: string,
  output: string,
  step: string | null = null
): string {
  let connect = 'fedbench.connect()';
  if (status !== null && status.mode === 'sandbox' && status.party) {
    connect = `fedbench.connect(${pyString(status.party)}, home=${pyString(status.home)})`;
  } else if (status !== null && status.mode === 'node') {
    connect = `fedbench.connect(home=${pyString(status.home)})`;
  }
  return [
    'import fedbench',
    '',
    `project = ${connect}.project(${pyString(project)})`,
    `project.run_by_id(${pyString(jobId)}).output(${pyString(output)}${
      step === null ? '' : `, step=${pyString(step)}`
    }).value()`
  ].join('\n');
}
