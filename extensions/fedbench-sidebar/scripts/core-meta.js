// The builder reads JupyterLab's core package (which packages are shared singletons, at which versions) from
// `<core path>/package.json`. It is taken from @jupyterlab/core-meta, pinned in package-lock.json, rather than
// from whichever JupyterLab is installed, so the same sources build the same files on every machine.
const fs = require('fs');
const path = require('path');

const source = require.resolve('@jupyterlab/core-meta/core.package.json');
const target = path.join(__dirname, '..', 'node_modules', '.fedbench-core');
fs.mkdirSync(target, { recursive: true });
fs.copyFileSync(source, path.join(target, 'package.json'));
