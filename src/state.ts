// Names of the values main hands to post through GITHUB_STATE.
export const STATE_IS_POST = 'isPost';
export const STATE_CONFIG_DIR = 'dockerConfigDir';
