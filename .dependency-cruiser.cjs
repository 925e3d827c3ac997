// The house's layer rules (ARCHITECTURE.md), checked in CI by `npm run lint:layers`: imports point down only
// (adapters -> core -> libraries -> util -> node), no library imports the core or an adapter, and no import circle.
const LIBS = '^src/(image|registry|engine|upload|layer-split|util)/';
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle: split the shared part out.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'libraries-never-import-the-core',
      severity: 'error',
      comment:
        'src/image, registry, engine, upload, layer-split and util are libraries: they never import src/core or src/adapters.',
      from: { path: LIBS },
      to: { path: '^src/(core|adapters)/' },
    },
    {
      name: 'core-never-imports-adapters',
      severity: 'error',
      comment: 'The core knows neither GitHub nor a terminal.',
      from: { path: '^src/core/' },
      to: { path: '^src/adapters/' },
    },
    {
      name: 'util-is-the-floor',
      severity: 'error',
      comment: 'src/util imports only node and other util modules.',
      from: { path: '^src/util/' },
      to: { path: '^src/(?!util/)' },
    },
    {
      name: 'image-model-below-its-users',
      severity: 'error',
      comment: 'The image model is shared by every source and sink: it imports only util.',
      from: { path: '^src/image/' },
      to: { path: '^src/(registry|engine|upload|layer-split)/' },
    },
    {
      name: 'registry-and-engine-are-independent',
      severity: 'error',
      comment: 'The registry client and the engine adapter know nothing of each other, of uploads or of splitting.',
      from: { path: '^src/(registry|engine)/' },
      to: { path: '^src/(registry|engine|upload|layer-split)/', pathNot: '^src/$1/' },
    },
    {
      name: 'upload-does-not-split',
      severity: 'error',
      comment: 'The uploader sends images; re-layering sits beside it and hands it blobs.',
      from: { path: '^src/upload/' },
      to: { path: '^src/layer-split/' },
    },
    {
      name: 'src-never-imports-tests',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(__tests__|test|bench|scripts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
