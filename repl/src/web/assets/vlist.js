// A list that draws only the rows in view: a conversation of 10 000 messages keeps a few dozen
// nodes in the page. Rows have their own heights (long texts wrap, images are taller); each is
// measured once drawn and the estimate of the others is kept until then.
'use strict';

class VList {
  constructor(el, make) {
    this.el = el;
    this.make = make;
    this.inner = document.createElement('div');
    this.inner.className = 'vinner';
    el.appendChild(this.inner);
    this.items = [];
    this.h = [];
    this.tops = [0];
    this.est = 30;
    this.nodes = new Map();
    this.onTop = null;
    this.queued = false;
    el.addEventListener('scroll', () => this.schedule());
    new ResizeObserver(() => this.schedule()).observe(el);
  }

  atBottom() {
    return this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 8;
  }

  // Shows `items` from the start, scrolled to the newest.
  set(items) {
    for (const n of this.nodes.values()) n.remove();
    this.nodes.clear();
    this.items = items;
    this.h = items.map(() => this.est);
    this.recalc();
    this.el.scrollTop = this.el.scrollHeight;
    this.render(true);
  }

  // Adds newer items at the end; follows them when the view was at the end.
  push(items) {
    const follow = this.atBottom();
    for (const it of items) {
      this.items.push(it);
      this.h.push(this.est);
    }
    this.recalc();
    this.render(follow);
  }

  // Adds older items at the start without moving what is in view.
  prepend(items) {
    if (!items.length) return;
    this.items = items.concat(this.items);
    this.h = items.map(() => this.est).concat(this.h);
    const added = items.length * this.est;
    this.recalc();
    this.el.scrollTop += added;
    this.render(false);
  }

  // Redraws one item (its content changed).
  refresh(item) {
    const n = this.nodes.get(item);
    if (n) { n.remove(); this.nodes.delete(item); }
    this.schedule();
  }

  recalc() {
    const n = this.items.length;
    const tops = new Array(n + 1);
    let t = 0;
    for (let i = 0; i < n; i++) { tops[i] = t; t += this.h[i]; }
    tops[n] = t;
    this.tops = tops;
    this.inner.style.height = t + 'px';
  }

  // The index of the row at height y.
  find(y) {
    let lo = 0, hi = this.items.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.tops[mid] <= y) lo = mid; else hi = mid - 1;
    }
    return Math.max(0, lo);
  }

  schedule() {
    if (this.queued) return;
    this.queued = true;
    requestAnimationFrame(() => { this.queued = false; this.render(false); });
  }

  render(follow) {
    const n = this.items.length;
    if (!n) return;
    const top = this.el.scrollTop, view = this.el.clientHeight;
    const first = Math.max(0, this.find(top) - 8);
    const last = Math.min(n - 1, this.find(top + view) + 8);
    const keep = new Set();
    for (let i = first; i <= last; i++) keep.add(this.items[i]);
    for (const [it, node] of this.nodes) {
      if (!keep.has(it)) { node.remove(); this.nodes.delete(it); }
    }
    for (let i = first; i <= last; i++) {
      const it = this.items[i];
      let node = this.nodes.get(it);
      if (!node) {
        node = this.make(it, () => this.remeasure());
        this.nodes.set(it, node);
        this.inner.appendChild(node);
      }
      node.style.top = this.tops[i] + 'px';
    }
    this.measure(first, last, follow);
    if (top < 200 && this.onTop) this.onTop();
  }

  remeasure() { this.schedule(); }

  // Takes the drawn rows' real heights; rows above the view that grew push the view down by as
  // much, so what the reader looks at stays put.
  measure(first, last, follow) {
    const anchor = this.find(this.el.scrollTop);
    let shift = 0, changed = false;
    for (let i = first; i <= last; i++) {
      const node = this.nodes.get(this.items[i]);
      const h = node ? node.offsetHeight : this.h[i];
      if (h && h !== this.h[i]) {
        if (i < anchor) shift += h - this.h[i];
        this.h[i] = h;
        changed = true;
      }
    }
    if (changed) {
      this.recalc();
      for (let i = first; i <= last; i++) {
        const node = this.nodes.get(this.items[i]);
        if (node) node.style.top = this.tops[i] + 'px';
      }
    }
    if (follow) this.el.scrollTop = this.el.scrollHeight;
    else if (shift) this.el.scrollTop += shift;
  }
}
