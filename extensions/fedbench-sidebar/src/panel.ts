/**
 * The "Federation" panel of the left sidebar: renders the state of model.ts and polls the server while it is
 * shown (the node's status, the projects, the selected project's runs; faster while a run is live).
 */
import { Widget } from '@lumino/widgets';
import { Signal, ISignal } from '@lumino/signaling';

import { ApiError, FedbenchApi } from './api';
import {
  IDashboard,
  IProject,
  IProjectsAnswer,
  IRun,
  IRunsAnswer,
  ISidebarState,
  IStatus,
  choose,
  health,
  initialState,
  isLive,
  percent,
  pollDelay,
  runLine,
  select,
  selectedProject,
  shownStepState,
  withError,
  withProjects,
  withRuns,
  withStatus
} from './model';

/** What the panel asks the plugin to do outside itself. */
export interface IPanelActions {
  /** Put code reading `output` of run `jobId` into the active notebook. */
  insertOutput(project: string, jobId: string, output: string, step: string | null): Promise<void>;
  /** Open a dashboard in a JupyterLab tab. */
  openDashboard(dashboard: IDashboard): void;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

function button(className: string, text: string, onClick: () => void): HTMLButtonElement {
  const node = el('button', `jp-Button fb-button ${className}`, text);
  node.type = 'button';
  node.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return node;
}

/** The sidebar panel. */
export class FederationPanel extends Widget {
  private _state: ISidebarState = initialState();
  private timer: number | null = null;
  private polling = false;
  private readonly _changed = new Signal<this, ISidebarState>(this);

  constructor(
    readonly api: FedbenchApi,
    private readonly actions: IPanelActions
  ) {
    super();
    this.id = 'fedbench-federation';
    this.addClass('fb-sidebar');
    this.title.caption = 'Federation';
    this.render();
  }

  /** The state shown. */
  get state(): ISidebarState {
    return this._state;
  }

  /** Emitted whenever the state changes (the status bar follows the node's status through it). */
  get changed(): ISignal<this, ISidebarState> {
    return this._changed;
  }

  /** Read everything again now. */
  async refresh(): Promise<void> {
    await this.poll();
  }

  protected onAfterShow(): void {
    this.schedule(0);
  }

  protected onBeforeHide(): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  private setState(next: ISidebarState): void {
    if (next === this._state) {
      return;
    }
    this._state = next;
    this.render();
    this._changed.emit(next);
  }

  private schedule(delay: number): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
    }
    this.timer = window.setTimeout(() => {
      this.timer = null;
      void this.poll().then(() => {
        if (this.isVisible) {
          this.schedule(pollDelay(this._state));
        }
      });
    }, delay);
  }

  private async poll(): Promise<void> {
    if (this.polling) {
      return;
    }
    this.polling = true;
    try {
      const status = await this.api.get<IStatus>('status');
      if (status !== null) {
        this.setState(withStatus(this._state, status));
      }
      if (this._state.status && this._state.status.node.ok) {
        const projects = await this.api.get<IProjectsAnswer>('projects');
        if (projects !== null) {
          this.setState(withProjects(this._state, projects));
        }
        await this.pollRuns();
      }
      this.setState(withError(this._state, null));
    } catch (error) {
      this.setState(withError(this._state, (error as Error).message));
    } finally {
      this.polling = false;
    }
  }

  private async pollRuns(): Promise<void> {
    const project = this._state.selected;
    if (project === null) {
      return;
    }
    const runs = await this.api.get<IRunsAnswer>(`projects/${encodeURIComponent(project)}/runs`);
    if (runs !== null) {
      this.setState(withRuns(this._state, runs));
    }
  }

  private async act(what: () => Promise<unknown>): Promise<void> {
    try {
      await what();
      this.setState(withError(this._state, null));
    } catch (error) {
      const message = error instanceof ApiError ? error.message : String(error);
      this.setState(withError(this._state, message));
    }
    await this.poll();
  }

  private accept(project: IProject): void {
    const datasets = this._state.chosen[project.name] || [];
    void this.act(() =>
      this.api.post(`projects/${encodeURIComponent(project.name)}/accept`, { datasets })
    );
  }

  private reject(project: IProject): void {
    void this.act(() =>
      this.api.post(`projects/${encodeURIComponent(project.name)}/reject`, {
        reason: 'declined from the JupyterLab sidebar'
      })
    );
  }

  private cancel(run: IRun): void {
    void this.act(() => this.api.post(`runs/${encodeURIComponent(run.job_id)}/cancel`));
  }

  private selectProject(name: string): void {
    this.setState(select(this._state, name));
    void this.pollRuns().catch(error =>
      this.setState(withError(this._state, (error as Error).message))
    );
  }

  /** Draw the whole panel from the state (the state changes only when an answer did). */
  private render(): void {
    const state = this._state;
    const root = this.node;
    root.replaceChildren();
    root.appendChild(el('h2', 'fb-title', 'Federation'));
    if (state.error) {
      root.appendChild(el('div', 'fb-error', state.error));
    }
    root.appendChild(this.renderNode(state.status));
    if (state.projects) {
      root.appendChild(this.renderProjects(state.projects));
    }
    const project = selectedProject(state);
    if (project) {
      root.appendChild(this.renderRuns(project, state.runs));
    }
    if (state.status && state.status.dashboards.length) {
      root.appendChild(this.renderDashboards(state.status.dashboards));
    }
  }

  private renderNode(status: IStatus | null): HTMLElement {
    const section = el('section', 'fb-node');
    const now = health(status);
    const line = el('div', `fb-health fb-health-${now.level}`, now.text);
    line.dataset.level = now.level;
    section.appendChild(line);
    if (status) {
      const list = el('ul', 'fb-peers');
      for (const peer of status.peers) {
        const item = el(
          'li',
          'fb-peer',
          peer.reachable
            ? `${peer.party}: reachable${peer.latency_ms !== null ? ` (${peer.latency_ms} ms)` : ''}`
            : `${peer.party}: ${peer.error || 'not reachable'}`
        );
        item.dataset.party = peer.party;
        item.dataset.reachable = String(peer.reachable);
        list.appendChild(item);
      }
      section.appendChild(list);
    }
    return section;
  }

  private renderProjects(answer: IProjectsAnswer): HTMLElement {
    const section = el('section', 'fb-projects');
    section.appendChild(el('h3', '', 'Projects'));
    if (!answer.projects.length) {
      section.appendChild(el('div', 'fb-empty', 'No projects yet.'));
    }
    for (const project of answer.projects) {
      const card = el('div', 'fb-project');
      card.dataset.name = project.name;
      card.dataset.state = project.state;
      if (project.name === this._state.selected) {
        card.classList.add('fb-selected');
      }
      const head = el('div', 'fb-project-head');
      head.appendChild(el('span', 'fb-project-name', project.name));
      head.appendChild(el('span', `fb-badge fb-state-${project.state}`, project.state));
      card.appendChild(head);
      const partners = project.partners.join(', ') || 'none';
      card.appendChild(
        el('div', 'fb-project-meta', `with ${partners} · uses ${project.uses.join(', ')}`)
      );
      if (project.state === 'pending') {
        card.appendChild(this.renderReview(project, answer));
      } else {
        card.addEventListener('click', () => this.selectProject(project.name));
      }
      section.appendChild(card);
    }
    return section;
  }

  private renderReview(project: IProject, answer: IProjectsAnswer): HTMLElement {
    const review = el('div', 'fb-review');
    review.appendChild(
      el(
        'div',
        'fb-proposal',
        `${project.initiator} proposes this project${project.purpose ? `: ${project.purpose}` : ''}.`
      )
    );
    for (const [party, ask] of Object.entries(project.asks)) {
      review.appendChild(el('div', 'fb-ask', `Asks ${party}: ${ask}`));
    }
    review.appendChild(el('div', 'fb-label', 'Terms'));
    const terms = el('ul', 'fb-terms');
    project.terms.forEach(t => terms.appendChild(el('li', '', t)));
    review.appendChild(terms);
    if (project.caveats.length) {
      review.appendChild(el('div', 'fb-label', 'What these terms do not stop'));
      const caveats = el('ul', 'fb-caveats');
      project.caveats.forEach(c => caveats.appendChild(el('li', '', c)));
      review.appendChild(caveats);
    }
    if (!project.can_answer) {
      review.appendChild(
        el(
          'div',
          'fb-note',
          `Your role on this node (${answer.user.role}) may not answer proposals.`
        )
      );
      return review;
    }
    review.appendChild(el('div', 'fb-label', 'Our datasets to authorise'));
    const chosen = this._state.chosen[project.name] || [];
    for (const dataset of answer.datasets) {
      const label = el('label', 'fb-dataset');
      const box = el('input');
      box.type = 'checkbox';
      box.value = dataset.name;
      box.checked = chosen.includes(dataset.name);
      box.addEventListener('change', () =>
        this.setState(choose(this._state, project.name, dataset.name, box.checked))
      );
      label.appendChild(box);
      label.appendChild(
        document.createTextNode(` ${dataset.name} (${dataset.n_rows.toLocaleString()} rows)`)
      );
      review.appendChild(label);
    }
    const buttons = el('div', 'fb-buttons');
    const accept = button('fb-accept jp-mod-accept', 'Accept', () => this.accept(project));
    accept.disabled = chosen.length === 0;
    buttons.appendChild(accept);
    buttons.appendChild(button('fb-reject jp-mod-reject', 'Reject', () => this.reject(project)));
    review.appendChild(buttons);
    return review;
  }

  private renderRuns(project: IProject, runs: IRun[]): HTMLElement {
    const section = el('section', 'fb-runs');
    section.dataset.project = project.name;
    section.appendChild(el('h3', '', `Runs of ${project.name}`));
    if (!runs.length) {
      section.appendChild(el('div', 'fb-empty', 'No runs yet.'));
    }
    const canAct = this._state.projects ? this._state.projects.user.can_answer : false;
    for (const run of runs) {
      const card = el('div', 'fb-run');
      card.dataset.job = run.job_id;
      card.dataset.state = run.state;
      card.appendChild(el('div', 'fb-run-line', runLine(run)));
      const bar = el('progress', 'fb-progress');
      bar.max = 100;
      bar.value = percent(run.progress);
      card.appendChild(bar);
      const steps = el('ul', 'fb-steps');
      for (const step of run.steps) {
        const shown = shownStepState(run, step);
        const item = el(
          'li',
          `fb-step fb-state-${shown.replace(' ', '_')}`,
          `${step.step}: ${shown} ${percent(step.progress)}%${
            step.state === 'running' && step.message ? ` · ${step.message}` : ''
          }`
        );
        item.dataset.state = shown.replace(' ', '_');
        steps.appendChild(item);
      }
      card.appendChild(steps);
      if (run.error) {
        card.appendChild(el('div', 'fb-error', run.error));
      }
      run.warnings.forEach(w => card.appendChild(el('div', 'fb-warning', `⚠ ${w}`)));
      const buttons = el('div', 'fb-buttons');
      if (isLive(run) && canAct) {
        buttons.appendChild(button('fb-cancel', 'Cancel', () => this.cancel(run)));
      }
      for (const output of run.outputs) {
        const label = output.step === null ? output.name : `${output.step}.${output.name}`;
        const insert = button('fb-insert', `Insert code: ${label}`, () => {
          void this.actions.insertOutput(project.name, run.job_id, output.name, output.step);
        });
        insert.dataset.output = output.name;
        insert.dataset.step = output.step || '';
        buttons.appendChild(insert);
      }
      card.appendChild(buttons);
      section.appendChild(card);
    }
    return section;
  }

  private renderDashboards(dashboards: IDashboard[]): HTMLElement {
    const section = el('section', 'fb-dashboards');
    section.appendChild(el('h3', '', 'Dashboards'));
    for (const dashboard of dashboards) {
      const open = button('fb-dashboard', dashboard.name, () =>
        this.actions.openDashboard(dashboard)
      );
      open.dataset.name = dashboard.name;
      section.appendChild(open);
    }
    return section;
  }
}
