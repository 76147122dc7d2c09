import {
  FAST_POLL,
  IProject,
  IProjectsAnswer,
  IRun,
  IStatus,
  SLOW_POLL,
  choose,
  health,
  initialState,
  outputSnippet,
  pollDelay,
  runLine,
  select,
  selectedProject,
  shownStepState,
  statusBarText,
  withProjects,
  withRuns,
  withStatus
} from '../model';

function status(overrides: Partial<IStatus> = {}): IStatus {
  return {
    mode: 'sandbox',
    home: '/sb',
    party: 'guest',
    node: { state: 'up', ok: true, error: null },
    peers: [
      { party: 'host', address: '127.0.0.1:1', reachable: true, latency_ms: 2, version: '0.1', error: null }
    ],
    dashboards: [],
    ...overrides
  };
}

function project(name: string, state: string): IProject {
  return {
    name,
    state,
    initiator: 'guest',
    purpose: '',
    partners: ['host'],
    accepted_by: ['guest'],
    uses: ['psi'],
    terms: [],
    caveats: [],
    asks: {},
    datasets: {},
    can_answer: state === 'pending',
    created_at: null
  };
}

function projects(...items: IProject[]): IProjectsAnswer {
  return {
    party: 'host',
    user: { name: 'admin', role: 'admin', can_answer: true },
    projects: items,
    datasets: [{ name: 't', n_rows: 20 }]
  };
}

function run(state: string, overrides: Partial<IRun> = {}): IRun {
  return {
    job_id: '0123456789abcdef',
    name: 'row_count',
    state,
    error: null,
    progress: state === 'succeeded' ? 1 : 0.5,
    initiator: 'guest',
    created_at: null,
    duration: '3 s',
    reused: [],
    steps: [],
    outputs: [],
    warnings: [],
    ...overrides
  };
}

describe('health and the status bar', () => {
  it('says the node and every peer are up', () => {
    expect(health(status())).toEqual({ level: 'ok', text: 'guest: node up, host reachable' });
    expect(statusBarText(status())).toBe('fedbench guest ✓ · host ✓');
  });

  it('names a peer that is not reachable', () => {
    const lost = status({
      peers: [
        { party: 'host', address: 'a', reachable: false, latency_ms: null, version: null, error: 'x' }
      ]
    });
    expect(health(lost)).toEqual({ level: 'degraded', text: 'guest: node up, host not reachable' });
    expect(statusBarText(lost)).toBe('fedbench guest ✓ · host ✗');
  });

  it('says when our own node is down, with why', () => {
    const down = status({ node: { state: 'down', ok: false, error: 'not running' } });
    expect(health(down)).toEqual({ level: 'down', text: 'guest: node down: not running' });
    expect(statusBarText(down)).toBe('fedbench guest ✗ node down');
    expect(health(null).level).toBe('unknown');
  });
});

describe('projects and the selection', () => {
  it('selects the first active project, and keeps a selection that still exists', () => {
    let state = withProjects(initialState(), projects(project('p', 'pending'), project('a', 'active')));
    expect(state.selected).toBe('a');
    state = select(state, 'p');
    state = withProjects(state, projects(project('p', 'active'), project('a', 'active')));
    expect(state.selected).toBe('p');
    expect(selectedProject(state)?.state).toBe('active');
  });

  it('drops the runs when the selection changes and ignores runs of another project', () => {
    let state = withProjects(initialState(), projects(project('a', 'active'), project('b', 'active')));
    state = withRuns(state, { project: 'a', runs: [run('running')] });
    expect(state.runs).toHaveLength(1);
    expect(withRuns(state, { project: 'b', runs: [] })).toBe(state);
    state = select(state, 'b');
    expect(state.runs).toEqual([]);
    state = withProjects(state, projects(project('a', 'active')));
    expect(state.selected).toBe('a');
  });

  it('remembers the datasets ticked for a proposal until it is no longer pending', () => {
    let state = withProjects(initialState(), projects(project('p', 'pending')));
    state = choose(state, 'p', 't', true);
    state = choose(state, 'p', 'u', true);
    state = choose(state, 'p', 'u', false);
    expect(state.chosen).toEqual({ p: ['t'] });
    state = withProjects(state, projects(project('p', 'pending')));
    expect(state.chosen).toEqual({ p: ['t'] });
    state = withProjects(state, projects(project('p', 'active')));
    expect(state.chosen).toEqual({});
  });

  it('keeps the status apart from the projects', () => {
    const state = withStatus(initialState(), status());
    expect(state.status?.party).toBe('guest');
    expect(state.projects).toBeNull();
  });
});

describe('runs', () => {
  it('polls fast while a shown run is live and slowly otherwise', () => {
    const base = withProjects(initialState(), projects(project('a', 'active')));
    expect(pollDelay(withRuns(base, { project: 'a', runs: [run('running')] }))).toBe(FAST_POLL);
    expect(pollDelay(withRuns(base, { project: 'a', runs: [run('queued')] }))).toBe(FAST_POLL);
    expect(pollDelay(withRuns(base, { project: 'a', runs: [run('succeeded')] }))).toBe(SLOW_POLL);
  });

  it('says a run in one line with its reused steps', () => {
    expect(runLine(run('succeeded', { reused: ['psi'] }))).toBe(
      '01234567 · row_count · succeeded · 3 s · reused psi'
    );
    expect(runLine(run('queued', { duration: null }))).toBe('01234567 · row_count · queued');
  });

  it('says a step a failed or cancelled run left waiting will not run', () => {
    const step = (state: string) => ({
      step: 'after',
      component: 'row_count',
      state,
      progress: 0,
      message: '',
      error: null
    });
    expect(shownStepState(run('failed'), step('queued'))).toBe('not run');
    expect(shownStepState(run('cancelled'), step('pending'))).toBe('not run');
    expect(shownStepState(run('failed'), step('failed'))).toBe('failed');
    expect(shownStepState(run('running'), step('queued'))).toBe('queued');
  });
});

describe('the output snippet', () => {
  it('connects to the same sandbox party and reads the output by run id', () => {
    const code = outputSnippet(status({ party: 'host' }), 'demo', 'abc', 'metrics');
    expect(code).toBe(
      'import fedbench\n\nproject = fedbench.connect("host", home="/sb").project("demo")\n' +
        'project.run_by_id("abc").output("metrics").value()'
    );
  });

  it('connects to a node home, and quotes names safely', () => {
    const code = outputSnippet(status({ mode: 'node', home: '/data/home' }), 'say "hi"', 'abc', 'model');
    expect(code).toContain('fedbench.connect(home="/data/home").project("say \\"hi\\"")');
    expect(outputSnippet(null, 'p', 'j', 'o')).toContain('fedbench.connect().project("p")');
  });

  it('names the step when the output is not the last of its name', () => {
    expect(outputSnippet(null, 'p', 'j', 'data', 'psi')).toContain(
      'project.run_by_id("j").output("data", step="psi").value()'
    );
  });
});
