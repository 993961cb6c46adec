/**
 * One IntersectionObserver for every canvas on the page: a chart, sparkline or heat map that is scrolled
 * out of view skips its per-tick redraw and catches up when it comes back.
 */
type Callback = (visible: boolean) => void;
const callbacks = new WeakMap<Element, Callback>();
let observer: IntersectionObserver | null = null;

function shared(): IntersectionObserver {
  if (!observer) {
    observer = new IntersectionObserver(
      (entries) => {
        for (const e of entries) callbacks.get(e.target)?.(e.isIntersecting);
      },
      { rootMargin: "100px" },
    );
  }
  return observer;
}

export function observeVisible(el: Element, cb: Callback): () => void {
  if (typeof IntersectionObserver === "undefined") {
    cb(true);
    return () => {};
  }
  callbacks.set(el, cb);
  shared().observe(el);
  return () => {
    callbacks.delete(el);
    shared().unobserve(el);
  };
}
