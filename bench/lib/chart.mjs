// The peers chart: a Vega-Lite spec rendered to SVG headlessly (vega's View with no renderer).
// One panel per workload; each peer is a dot at its median ops/s relative to pyembed (log scale),
// with a line over its min–max across rounds.
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

/**
 * rows: { title, peer, ratio, lo, hi, label }; order: { peers: [...labels], workloads: [...titles] }
 */
export async function drawPeersChart(rows, order) {
  if (rows.length === 0) throw new Error('nothing was measured');
  const values = rows.map((r) => ({ ...r, lo: Math.max(r.lo, 1e-6), hi: Math.max(r.hi, 1e-6), ratio: Math.max(r.ratio, 1e-6) }));
  const min = Math.min(...values.map((r) => r.lo), 0.5);
  const max = Math.max(...values.map((r) => r.hi), 2);
  const domain = [10 ** Math.floor(Math.log10(min)), 10 ** Math.ceil(Math.log10(max))];
  const decades = [];
  for (let d = domain[0]; d <= domain[1] * 1.0001; d *= 10) decades.push(Number(d.toPrecision(1)));
  const color = { field: 'peer', legend: null, sort: order.peers, scale: { scheme: 'tableau10', domain: order.peers } };
  const y = { field: 'peer', type: 'nominal', sort: order.peers, title: null, axis: { labelLimit: 200 } };
  const x = {
    field: 'ratio',
    type: 'quantitative',
    scale: { type: 'log', domain },
    axis: { format: '~g', grid: true, values: decades },
    title: 'ops/s relative to pyembed (log scale; right of 1 = faster than pyembed)',
  };
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    background: 'white',
    facet: {
      row: {
        field: 'title',
        type: 'nominal',
        sort: order.workloads,
        title: null,
        header: { labelAngle: 0, labelAlign: 'left', labelAnchor: 'start', labelOrient: 'top', labelFontWeight: 'bold', labelLimit: 600 },
      },
    },
    spec: {
      width: 520,
      height: { step: 16 },
      layer: [
        { mark: { type: 'rule', color: '#999', strokeDash: [3, 3] }, encoding: { x: { datum: 1, type: 'quantitative', scale: { type: 'log', domain } } } },
        { mark: { type: 'rule', strokeWidth: 2, opacity: 0.6 }, encoding: { y, x: { ...x, field: 'lo' }, x2: { field: 'hi' }, color } },
        { mark: { type: 'point', filled: true, size: 60 }, encoding: { y, x, color, tooltip: [{ field: 'label' }] } },
        { mark: { type: 'text', align: 'left', dx: 6, fontSize: 9, color: '#444' }, encoding: { y, x: { ...x, field: 'hi' }, text: { field: 'label' } } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
    config: { view: { stroke: '#ddd' }, font: 'sans-serif' },
  };
  // vega-lite warns that the facets' independent y scales share a field: they do, on purpose.
  const quiet = { level() { return quiet; }, warn() { return quiet; }, info() { return quiet; }, debug() { return quiet; }, error(...a) { console.error(...a); return quiet; } };
  const compiled = vegaLite.compile(spec, { logger: quiet }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  return view.toSVG();
}
