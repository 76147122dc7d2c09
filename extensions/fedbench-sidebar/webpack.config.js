// Merged into @jupyterlab/builder's webpack config. Module ids are the modules' names relative to this folder:
// the default (`deterministic`) hashes the module-federation container's identifier, which holds the absolute
// paths of the exposed modules, so each checkout location would build a different remoteEntry and the
// committed build (fedbench/labextension) would look stale in every other clone.
module.exports = {
  optimization: {
    moduleIds: 'named'
  }
};
