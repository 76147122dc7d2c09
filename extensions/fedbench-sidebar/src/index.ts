/**
 * fedbench's JupyterLab plugin: the "Federation" left sidebar, its command palette entries and a status bar
 * item with our party and its peers' health.
 */
import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  IFrame,
  MainAreaWidget,
  showErrorMessage
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { FedbenchApi } from './api';
import { IDashboard, IStatus, outputSnippet, statusBarText, health } from './model';
import { FederationPanel } from './panel';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
  '<circle cx="5" cy="12" r="3"/><circle cx="19" cy="5" r="3"/><circle cx="19" cy="19" r="3"/>' +
  '<path d="M7.6 10.8l8.8-4.6.9 1.8-8.8 4.6zM7.6 13.2l.9-1.8 8.8 4.6-.9 1.8z"/></g></svg>';

/** The sidebar's icon: three linked parties. */
export const federationIcon = new LabIcon({ name: 'fedbench:federation', svgstr: ICON_SVG });

/** The command ids. */
export namespace CommandIDs {
  export const open = 'fedbench:open-sidebar';
  export const refresh = 'fedbench:refresh';
  export const dashboard = 'fedbench:open-dashboard';
  export const insert = 'fedbench:insert-output';
}

const STATUS_POLL = 5000;

/** A notebook to insert into: the active one, else a new one. */
async function targetNotebook(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null
): Promise<NotebookPanel> {
  const current = tracker ? tracker.currentWidget : null;
  if (current) {
    return current;
  }
  const created = (await app.commands.execute('notebook:create-new', {
    kernelName: 'python3'
  })) as NotebookPanel;
  await created.context.ready;
  return created;
}

/** Insert `code` as a new cell below the active one of the active notebook, and show it. */
async function insertCode(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null,
  code: string
): Promise<void> {
  const panel = await targetNotebook(app, tracker);
  const notebook = panel.content;
  const active = notebook.activeCell;
  if (!active || active.model.sharedModel.getSource().trim() !== '') {
    NotebookActions.insertBelow(notebook);
  }
  const cell = notebook.activeCell;
  if (cell) {
    cell.model.sharedModel.setSource(code);
  }
  app.shell.activateById(panel.id);
}

/** Open a Voila dashboard in a main-area tab. */
function openDashboard(app: JupyterFrontEnd, dashboard: IDashboard): void {
  const id = `fedbench-dashboard-${dashboard.name}`;
  for (const widget of app.shell.widgets('main')) {
    if (widget.id === id) {
      app.shell.activateById(id);
      return;
    }
  }
  const frame = new IFrame({
    sandbox: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-downloads', 'allow-popups']
  });
  frame.url = dashboard.url;
  frame.addClass('fb-dashboard-frame');
  const widget = new MainAreaWidget({ content: frame });
  widget.id = id;
  widget.title.label = `${dashboard.name} dashboard`;
  widget.title.icon = federationIcon;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  app.shell.activateById(id);
}

/** The status bar item: our party and its peers, polled every few seconds. */
class StatusItem extends Widget {
  private status: IStatus | null = null;

  constructor(
    private readonly api: FedbenchApi,
    onClick: () => void,
    private readonly onStatus: (status: IStatus) => void
  ) {
    super();
    this.addClass('fb-statusbar');
    this.node.title = 'fedbench: open the Federation sidebar';
    this.node.addEventListener('click', onClick);
    this.display(null);
    void this.poll();
  }

  display(status: IStatus | null): void {
    this.status = status;
    this.node.textContent = statusBarText(status);
    this.node.dataset.level = health(status).level;
  }

  private async poll(): Promise<void> {
    try {
      const status = await this.api.get<IStatus>('status');
      if (status !== null) {
        this.display(status);
        this.onStatus(status);
      }
    } catch {
      this.display(this.status);
    }
    window.setTimeout(() => void this.poll(), STATUS_POLL);
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'fedbench-sidebar:plugin',
  description: 'The Federation sidebar: the node, its peers, projects and runs.',
  autoStart: true,
  optional: [ICommandPalette, INotebookTracker, IStatusBar, ILabShell],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null,
    statusBar: IStatusBar | null
  ) => {
    const settings = app.serviceManager.serverSettings;
    const panel = new FederationPanel(new FedbenchApi(settings), {
      insertOutput: async (project, jobId, output, step) => {
        const code = outputSnippet(panel.state.status, project, jobId, output, step);
        try {
          await insertCode(app, tracker, code);
        } catch (error) {
          void showErrorMessage('fedbench: could not insert the code', String(error));
        }
      },
      openDashboard: dashboard => openDashboard(app, dashboard)
    });
    panel.title.icon = federationIcon;
    app.shell.add(panel, 'left', { rank: 600 });

    app.commands.addCommand(CommandIDs.open, {
      label: 'fedbench: Show the Federation sidebar',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.refresh, {
      label: 'fedbench: Refresh the Federation sidebar',
      execute: () => panel.refresh()
    });
    app.commands.addCommand(CommandIDs.dashboard, {
      label: args => `fedbench: Open the ${args.name ?? ''} dashboard`,
      execute: args => {
        const status = panel.state.status;
        const found = status ? status.dashboards.find(d => d.name === args.name) : undefined;
        if (found) {
          openDashboard(app, found);
        }
      }
    });
    app.commands.addCommand(CommandIDs.insert, {
      label: 'fedbench: Insert code reading a run output',
      execute: async args => {
        const code = outputSnippet(
          panel.state.status,
          String(args.project),
          String(args.job_id),
          String(args.output),
          args.step ? String(args.step) : null
        );
        await insertCode(app, tracker, code);
      }
    });

    const category = 'fedbench';
    const listed = new Set<string>();
    const listDashboards = (status: IStatus | null) => {
      for (const dashboard of status ? status.dashboards : []) {
        if (palette && !listed.has(dashboard.name)) {
          listed.add(dashboard.name);
          palette.addItem({ command: CommandIDs.dashboard, category, args: { name: dashboard.name } });
        }
      }
    };
    if (palette) {
      palette.addItem({ command: CommandIDs.open, category });
      palette.addItem({ command: CommandIDs.refresh, category });
    }
    panel.changed.connect((_, state) => listDashboards(state.status));

    if (statusBar) {
      const item = new StatusItem(
        new FedbenchApi(settings),
        () => app.shell.activateById(panel.id),
        listDashboards
      );
      panel.changed.connect((_, state) => item.display(state.status));
      statusBar.registerStatusItem('fedbench-sidebar:status', {
        item,
        align: 'left',
        rank: 100
      });
    }
  }
};

export default plugin;
