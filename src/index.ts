// One bundle for both steps (as docker/login-action does): main marks the state, so the post step knows it is one.
import * as core from './adapters/workflow-commands.js';
import { main } from './adapters/main.js';
import { post } from './adapters/post.js';
import { STATE_IS_POST } from './adapters/state.js';

if (core.getState(STATE_IS_POST) === 'true') {
  await post();
} else {
  core.saveState(STATE_IS_POST, 'true');
  await main();
}
