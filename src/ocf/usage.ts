export const OCF_ACTIONS = ['start', 'stop', 'monitor', 'reload-agent', 'validate-all', 'meta-data', 'usage', 'help'] as const;
export const CLI_COMMANDS = ['status', 'preflight', 'cutover', 'failback', 'finish', 'teardown'] as const;

export function usageText(program = 'pgtwin-migrate'): string {
  return `usage: ${program} {start|stop|monitor|reload-agent|validate-all|meta-data|usage}
       ${program} {status|preflight|cutover|failback|finish|teardown} [options]   (see ${program} --help)

OCF resource agent: PostgreSQL major-version migration by logical replication.
The actions read their parameters from OCF_RESKEY_* variables, as Pacemaker sets them.
`;
}
