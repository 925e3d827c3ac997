import { cleanInstruction, layerFacts, layersOver, type HistoryRow, type LayerFact } from '../../src/image/layers.js';

const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const short = (n: number) => String(n).repeat(12).slice(0, 12);
const row = (createdBy: string, size: number): HistoryRow => ({ size, createdBy });

type Fact = Pick<LayerFact, 'index' | 'size' | 'instruction'>;
const facts = (layers: LayerFact[]): Fact[] =>
  layers.map(({ index, size, instruction }) => ({ index, size, instruction }));

describe('cleanInstruction', () => {
  test.each([
    ['/bin/sh -c #(nop) COPY file:abc in /x ', 'COPY file:abc in /x'],
    ['/bin/sh -c #(nop)  CMD ["x"]', 'CMD ["x"]'],
    ['/bin/sh -c #(nop) ADD file:6b80a606c07f9f2a in / ', 'ADD file:6b80a606c07f9f2a in /'],
    ['/bin/sh -c #(nop)  ENV PATH=/usr/local/bin:/usr/bin', 'ENV PATH=/usr/local/bin:/usr/bin'],
    ['/bin/sh -c #(nop) WORKDIR /app', 'WORKDIR /app'],
    ['/bin/sh -c apt-get update && apt-get install -y curl', 'RUN apt-get update && apt-get install -y curl'],
    ['/bin/sh -c make   &&   make install', 'RUN make && make install'],
    [
      '/bin/sh -c set -eux; \\\n\tapk add --no-cache ca-certificates',
      'RUN set -eux; \\ apk add --no-cache ca-certificates',
    ],
    ['COPY blob /blob # buildkit', 'COPY blob /blob'],
    ['RUN /bin/sh -c make # buildkit', 'RUN /bin/sh -c make'],
    ['RUN |2 VERSION=1 TARGET=x /bin/sh -c make # buildkit', 'RUN |2 VERSION=1 TARGET=x /bin/sh -c make'],
    ['WORKDIR /app', 'WORKDIR /app'],
    ['ENV A=b', 'ENV A=b'],
    ['COPY --from=build /out /app # buildkit', 'COPY --from=build /out /app'],
    ['ADD https://example.com/data.tar.gz /data # buildkit', 'ADD https://example.com/data.tar.gz /data'],
    ['  COPY  a   b  ', 'COPY a b'],
    ['# buildkit is in the middle # buildkit', '# buildkit is in the middle'],
    ['', ''],
    // the image author's text, shown in advisories and the summary: one line, escapes shown, no command (issue 18)
    ['RUN echo x\n::error title=pwned::y # buildkit', 'RUN echo x ::error title=pwned::y'],
    ['::error title=pwned::y', '\\::error title=pwned::y'],
    ['RUN printf "\x1b[2K" ##[error]legacy', 'RUN printf "\\e[2K" ##\\[error]legacy'],
    [`RUN ${'x'.repeat(1000)}`, `RUN ${'x'.repeat(507)}…`],
  ])('%j -> %j', (createdBy, expected) => {
    expect(cleanInstruction(createdBy)).toBe(expected);
  });
});

describe('cleanInstruction: classic RUN with build args', () => {
  // Bug: the classic builder records a RUN made with build args as `|N K=V ... /bin/sh -c CMD`; the prefix is not
  // recognised, so the instruction loses its RUN verb and the advisory cannot give RUN-specific advice.
  test.each([['|1 VERSION=1.2 /bin/sh -c make'], ['|2 A=1 B=2 /bin/sh -c curl -fsSLO https://example.com/big.tar']])(
    '%j starts with RUN',
    (createdBy) => {
      expect(cleanInstruction(createdBy)).toMatch(/^RUN /);
    },
  );
});

describe('layerFacts', () => {
  // docker history order: newest first.
  const classic: HistoryRow[] = [
    row('/bin/sh -c #(nop)  CMD ["x"]', 0),
    row('/bin/sh -c #(nop) COPY file:abc in /x ', 1_800_000_000),
    row('/bin/sh -c #(nop) WORKDIR /srv', 0),
    row('/bin/sh -c apk add --no-cache curl', 2_500_000),
    row('/bin/sh -c #(nop)  CMD ["/bin/sh"]', 0),
    row('/bin/sh -c #(nop) ADD file:6b80a606c07f in / ', 7_800_000),
  ];

  const buildkit: HistoryRow[] = [
    row('CMD ["./server"]', 0),
    row('ENV A=b', 0),
    row('COPY blob /blob # buildkit', 1_500_000_000),
    row('RUN /bin/sh -c make # buildkit', 40_000_000),
    row('WORKDIR /app', 0),
    row('/bin/sh -c #(nop)  CMD ["/bin/sh"]', 0),
    row('/bin/sh -c #(nop) ADD file:6b80a606c07f in / ', 7_800_000),
  ];

  test.each<[string, string[], HistoryRow[], Fact[]]>([
    [
      'classic builder',
      [d(1), d(2), d(3)],
      classic,
      [
        { index: 1, size: 7_800_000, instruction: 'ADD file:6b80a606c07f in /' },
        { index: 2, size: 2_500_000, instruction: 'RUN apk add --no-cache curl' },
        { index: 3, size: 1_800_000_000, instruction: 'COPY file:abc in /x' },
      ],
    ],
    [
      'BuildKit',
      [d(1), d(2), d(3)],
      buildkit,
      [
        { index: 1, size: 7_800_000, instruction: 'ADD file:6b80a606c07f in /' },
        { index: 2, size: 40_000_000, instruction: 'RUN /bin/sh -c make' },
        { index: 3, size: 1_500_000_000, instruction: 'COPY blob /blob' },
      ],
    ],
    [
      'a zero-size RUN layer (classic builder keeps it)',
      [d(1), d(2), d(3)],
      [
        row('/bin/sh -c #(nop)  CMD ["x"]', 0),
        row('/bin/sh -c #(nop) COPY file:abc in /x ', 900),
        row('/bin/sh -c rm -f /nonexistent', 0),
        row('/bin/sh -c #(nop) ADD file:base in / ', 5_000),
      ],
      [
        { index: 1, size: 5_000, instruction: 'ADD file:base in /' },
        { index: 2, size: 0, instruction: 'RUN rm -f /nonexistent' },
        { index: 3, size: 900, instruction: 'COPY file:abc in /x' },
      ],
    ],
    [
      'a zero-size RUN row without a layer (BuildKit drops it)',
      [d(1), d(2)],
      [
        row('COPY app /app # buildkit', 900),
        row('RUN /bin/sh -c true # buildkit', 0),
        row('/bin/sh -c #(nop) ADD file:base in / ', 5_000),
      ],
      [
        { index: 1, size: 5_000, instruction: 'ADD file:base in /' },
        { index: 2, size: 900, instruction: 'COPY app /app' },
      ],
    ],
    [
      'a single-layer image',
      [d(7)],
      [row('/bin/sh -c #(nop) ADD file:base in / ', 5_000)],
      [{ index: 1, size: 5_000, instruction: 'ADD file:base in /' }],
    ],
    [
      'more layers than history rows: no instruction, no size',
      [d(1), d(2), d(3)],
      [row('COPY blob /blob # buildkit', 1_500_000_000), row('/bin/sh -c #(nop) ADD file:base in / ', 5_000)],
      [
        { index: 1, size: 0, instruction: null },
        { index: 2, size: 0, instruction: null },
        { index: 3, size: 0, instruction: null },
      ],
    ],
    [
      'fewer layers than history rows: no instruction, no size',
      [d(1)],
      [row('COPY blob /blob # buildkit', 1_500_000_000), row('/bin/sh -c #(nop) ADD file:base in / ', 5_000)],
      [{ index: 1, size: 0, instruction: null }],
    ],
    [
      'no history at all',
      [d(1), d(2)],
      [],
      [
        { index: 1, size: 0, instruction: null },
        { index: 2, size: 0, instruction: null },
      ],
    ],
    ['no layers', [], classic, []],
  ])('%s', (_name, diffIds, history, expected) => {
    expect(facts(layerFacts(diffIds, history))).toEqual(expected);
  });

  test('diffId and shortId come from RootFS.Layers, oldest first', () => {
    const layers = layerFacts(
      [
        'sha256:cacd00243bba1e6f2b5c0a9e7d4f8b1c2a3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f',
        '85954f30cf6d0000000000000000000000000000000000000000000000000000',
      ],
      [row('COPY a /a # buildkit', 10), row('COPY b /b # buildkit', 20)],
    );
    expect(layers.map((l) => [l.index, l.diffId, l.shortId])).toEqual([
      [1, 'sha256:cacd00243bba1e6f2b5c0a9e7d4f8b1c2a3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f', 'cacd00243bba'],
      [2, '85954f30cf6d0000000000000000000000000000000000000000000000000000', '85954f30cf6d'],
    ]);
    expect(layers.map((l) => l.size)).toEqual([20, 10]);
  });

  test('does not mutate the history it is given', () => {
    const history = [row('COPY a /a # buildkit', 10), row('COPY b /b # buildkit', 20)];
    const copy = history.map((r) => ({ ...r }));
    layerFacts([d(1), d(2)], history);
    expect(history).toEqual(copy);
  });

  test('short IDs', () => {
    expect(layerFacts([d(1), d(2)], []).map((l) => l.shortId)).toEqual([short(1), short(2)]);
  });
});

describe('layerFacts: BuildKit WORKDIR that creates a directory', () => {
  // Bug: BuildKit's WORKDIR makes a layer (llb.Mkdir, withLayer=true) whose `docker history` size on the classic store
  // is 0, so neither filter matches RootFS.Layers: every layer loses its size and instruction, and the preflight
  // warnings and the 524 advisory go silent for the most common Dockerfile shape (FROM x / WORKDIR /app / COPY / RUN).
  test('sizes and instructions still line up', () => {
    const history: HistoryRow[] = [
      row('CMD ["node","server.js"]', 0),
      row('COPY . . # buildkit', 1_500_000_000),
      row('RUN /bin/sh -c npm ci # buildkit', 40_000_000),
      row('WORKDIR /app', 0),
      row('/bin/sh -c #(nop)  CMD ["node"]', 0),
      row('/bin/sh -c #(nop) ADD file:base in / ', 7_800_000),
    ];
    expect(facts(layerFacts([d(1), d(2), d(3), d(4)], history))).toEqual([
      { index: 1, size: 7_800_000, instruction: 'ADD file:base in /' },
      { index: 2, size: 0, instruction: 'WORKDIR /app' },
      { index: 3, size: 40_000_000, instruction: 'RUN /bin/sh -c npm ci' },
      { index: 4, size: 1_500_000_000, instruction: 'COPY . .' },
    ]);
  });
});

describe('layersOver', () => {
  const layers = layerFacts(
    [d(1), d(2), d(3), d(4)],
    [
      row('COPY d /d # buildkit', 1_000_000_001),
      row('COPY c /c # buildkit', 1_000_000_000),
      row('COPY b /b # buildkit', 2_500_000_000),
      row('ADD base / # buildkit', 5_000),
    ],
  );

  test.each<[number, number[]]>([
    [1_000_000_000, [2, 4]],
    [999_999_999, [2, 3, 4]],
    [1_000_000_001, [2]],
    [3_000_000_000, []],
    [1, [1, 2, 3, 4]],
  ])('limit %d -> layers %j', (limit, indexes) => {
    expect(layersOver(layers, limit).map((l) => l.index)).toEqual(indexes);
  });

  test('empty list', () => {
    expect(layersOver([], 1)).toEqual([]);
  });
});
