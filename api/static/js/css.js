// The Content-Security-Policy allows no inline style attributes (style-src 'self'), so views write geometry
// and colours as data-css-PROP="value" and this applies them through the CSSOM, which the policy allows.
// One observer covers every innerHTML a view writes: nothing to remember at each call site.
const PROPS = ["left", "width", "background"];
const SELECTOR = PROPS.map(p => `[data-css-${p}]`).join(",");

function apply(el) {
  for (const p of PROPS) {
    const v = el.getAttribute(`data-css-${p}`);
    if (v != null) el.style.setProperty(p, v);
  }
}

function applyWithin(node) {
  if (node.nodeType !== 1) return;
  if (node.matches(SELECTOR)) apply(node);
  node.querySelectorAll(SELECTOR).forEach(apply);
}

export function watchCss(root = document.body) {
  applyWithin(root);
  new MutationObserver(records => {
    for (const r of records) {
      if (r.type === "attributes") apply(r.target);
      else r.addedNodes.forEach(applyWithin);
    }
  }).observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: PROPS.map(p => `data-css-${p}`) });
}
