// /s/TOKEN: the student session cookie is set; move to the lab's page, replacing this history
// entry so that the link with the token does not stay behind the back button.
'use strict';
const go = document.getElementById('go');
if (go && go.dataset.next && go.dataset.next.startsWith('/')) location.replace(go.dataset.next);
