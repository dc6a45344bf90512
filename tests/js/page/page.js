/* page.js -- the classic-script test page: the global Herald from herald.js. */
runPage(window.Herald);
