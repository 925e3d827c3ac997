// Names of the values main hands to post through GITHUB_STATE.
export const STATE_IS_POST = 'isPost';
/** The run's work directory (credentials, relayer scratch space): post removes it after a killed main. */
export const STATE_WORK_DIR = 'workDir';
