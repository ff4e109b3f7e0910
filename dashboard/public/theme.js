// Runs in <head> before the page paints: applies the remembered theme (light / dark), else the OS's.
(function () {
  try {
    var t = localStorage.getItem('prunewise-theme');
    if (t === 'light' || t === 'dark') document.documentElement.setAttribute('data-theme', t);
  } catch (e) {
    /* storage blocked: follow the OS */
  }
})();
