/**
 * The one parameter table. The meta-data XML, the defaults, the validation
 * (src/ocf/config.ts), the README's parameter table and the man page are all
 * generated from it. Keep it free of imports: `meta-data` loads nothing else.
 */

/** How a raw OCF_RESKEY_* string is read and checked (see config.ts). */
export type ParamKind =
  | 'text' // any string, trimmed
  | 'resource' // a Pacemaker resource id
  | 'database-list'
  | 'database'
  | 'port'
  | 'port-or-empty'
  | 'count' // non-negative integer
  | 'seconds' // positive integer
  | 'boolean'
  | 'choice'
  | 'prefix' // object-name prefix: [a-z_][a-z0-9_]*
  | 'path-or-empty'
  | 'ignored'; // accepted for compatibility, not used

export type ParamGroup = 'databases' | 'clusters' | 'access' | 'names' | 'behaviour' | 'cutover';

export interface ParamSpec {
  readonly name: string;
  readonly kind: ParamKind;
  /** The content type announced in meta-data. */
  readonly type: 'string' | 'integer' | 'boolean';
  readonly default: string;
  readonly shortdesc: string;
  readonly longdesc: string;
  readonly group: ParamGroup;
  readonly required?: boolean;
  /** Pacemaker applies a change with reload-agent instead of a restart. */
  readonly reloadable?: boolean;
  /** Allowed values for kind 'choice' (first is canonical; aliases map to one). */
  readonly choices?: readonly string[];
  readonly aliases?: Readonly<Record<string, string>>;
  readonly deprecatedFor?: string;
}

export const PARAMS = [
  {
    name: 'databases',
    kind: 'database-list',
    type: 'string',
    default: '',
    group: 'databases',
    shortdesc: 'Databases to migrate (comma-separated)',
    longdesc: `Comma-separated list of the databases to migrate, e.g. "postgres,myapp,analytics".
Whitespace around each name is ignored and the order is kept. Every database gets its own
publication, subscription, replication slot and DDL trigger; all of them are cut over together.
Every database must exist on both clusters before start. Any name PostgreSQL accepts works,
including names with hyphens, dots, spaces, quotes or non-ASCII characters; an empty item, a
duplicate, or a name longer than 63 bytes is a configuration error. When empty, the legacy
parameter pgdatabase names the single database. The list is recorded at the first start and
the cutover refuses to run when it has changed since.`,
  },
  {
    name: 'pgdatabase',
    kind: 'database',
    type: 'string',
    default: 'postgres',
    group: 'databases',
    deprecatedFor: 'databases',
    shortdesc: 'Single database to migrate (deprecated: use databases)',
    longdesc: `Deprecated: use databases. The single database to migrate, used only when databases is
empty; kept so that configurations written for earlier versions keep working.`,
  },
  {
    name: 'source_cluster',
    kind: 'resource',
    type: 'string',
    default: 'postgres-clone',
    required: true,
    group: 'clusters',
    shortdesc: 'Source cluster resource (promotable clone)',
    longdesc: `Pacemaker resource id of the source PostgreSQL cluster (the promotable clone that serves
production today, e.g. PostgreSQL 17). Its Promoted node is the source primary.`,
  },
  {
    name: 'target_cluster',
    kind: 'resource',
    type: 'string',
    default: 'postgres-clone-18',
    required: true,
    group: 'clusters',
    shortdesc: 'Target cluster resource (promotable clone)',
    longdesc: `Pacemaker resource id of the target PostgreSQL cluster (the promotable clone of the new
major version, e.g. PostgreSQL 18). Its Promoted node is the target primary and holds the
subscriptions.`,
  },
  {
    name: 'source_node_role',
    kind: 'choice',
    type: 'string',
    default: 'Promoted',
    choices: ['Promoted', 'Unpromoted'],
    aliases: { master: 'Promoted', slave: 'Unpromoted' },
    group: 'clusters',
    shortdesc: 'Source node the subscriptions read from: Promoted or Unpromoted',
    longdesc: `Which source node the target's subscriptions read changes from. "Promoted" (default): the
source primary. "Unpromoted": a source standby (PostgreSQL 16 or later, hot_standby_feedback=on),
which keeps the decoding work off the primary; publications are still created on the primary
and the agent calls pg_log_standby_snapshot() there so the standby's slots become consistent.
The old words Master and Slave are accepted.`,
  },
  {
    name: 'source_host',
    kind: 'text',
    type: 'string',
    default: '',
    group: 'clusters',
    shortdesc: 'Address of the source primary (overrides node discovery)',
    longdesc: `Host name or address the agent uses to reach the source primary. Empty (default): the name
of the node on which Pacemaker runs the source cluster's Promoted instance. Set it when node
names do not resolve, e.g. to an FQDN or to the address of a VIP that follows the primary.`,
  },
  {
    name: 'target_host',
    kind: 'text',
    type: 'string',
    default: '',
    group: 'clusters',
    shortdesc: 'Address of the target primary (overrides node discovery)',
    longdesc: `Host name or address the agent uses to reach the target primary. Empty (default): the name
of the node on which Pacemaker runs the target cluster's Promoted instance.`,
  },
  {
    name: 'pgport',
    kind: 'port',
    type: 'integer',
    default: '5432',
    group: 'clusters',
    shortdesc: 'PostgreSQL port of both clusters',
    longdesc: `TCP port of PostgreSQL on both clusters, unless source_pgport or target_pgport say otherwise.`,
  },
  {
    name: 'source_pgport',
    kind: 'port-or-empty',
    type: 'integer',
    default: '',
    group: 'clusters',
    shortdesc: 'PostgreSQL port of the source cluster (default: pgport)',
    longdesc: `TCP port of the source cluster's PostgreSQL. Empty: pgport. Also used in the target's
subscription connection to source_replication_vip.`,
  },
  {
    name: 'target_pgport',
    kind: 'port-or-empty',
    type: 'integer',
    default: '',
    group: 'clusters',
    shortdesc: 'PostgreSQL port of the target cluster (default: pgport)',
    longdesc: `TCP port of the target cluster's PostgreSQL. Empty: pgport. Also used in the source's
reverse subscription connection to target_replication_vip.`,
  },
  {
    name: 'source_replication_vip',
    kind: 'text',
    type: 'string',
    default: '',
    required: true,
    group: 'clusters',
    shortdesc: 'Address the target subscribes to (source side)',
    longdesc: `Address (usually a VIP) through which the target cluster's subscriptions reach the source
cluster, e.g. 192.168.60.104. It must lead to the source node of source_node_role.`,
  },
  {
    name: 'target_replication_vip',
    kind: 'text',
    type: 'string',
    default: '',
    required: true,
    group: 'clusters',
    shortdesc: 'Address the source subscribes to after cutover (target side)',
    longdesc: `Address (usually a VIP) through which the source cluster's reverse subscriptions reach the
target primary after the cutover, e.g. 192.168.60.105.`,
  },
  {
    name: 'production_vip_resource',
    kind: 'resource',
    type: 'string',
    default: 'postgres-vip',
    group: 'clusters',
    shortdesc: 'Production VIP resource (follows the source today)',
    longdesc: `Pacemaker resource id of the VIP the applications use, colocated with the source cluster.
At cutover its address and the target VIP's address are swapped in one CIB update, so the
production address is then served by the target cluster.`,
  },
  {
    name: 'target_vip_resource',
    kind: 'resource',
    type: 'string',
    default: 'postgres-vip-18',
    group: 'clusters',
    shortdesc: 'Target cluster VIP resource',
    longdesc: `Pacemaker resource id of the target cluster's VIP. At cutover it receives the production
address and production_vip_resource receives this resource's address.`,
  },
  {
    name: 'vip_parameter',
    kind: 'text',
    type: 'string',
    default: 'ip',
    group: 'clusters',
    shortdesc: 'VIP instance attribute that is swapped',
    longdesc: `Name of the instance attribute that holds the address in both VIP resources ("ip" for
IPaddr2).`,
  },
  {
    name: 'migration_dbuser',
    kind: 'text',
    type: 'string',
    default: 'pgmigrate',
    group: 'access',
    shortdesc: 'PostgreSQL user of the migration (superuser)',
    longdesc: `PostgreSQL role the agent and the subscriptions use on both clusters. It needs SUPERUSER
(or the REPLICATION attribute plus ownership of the published tables, CREATE on each database
and pg_create_subscription on the target) and access to every database in databases.`,
  },
  {
    name: 'source_pghome',
    kind: 'path-or-empty',
    type: 'string',
    default: '',
    group: 'access',
    shortdesc: 'Home of the source PostgreSQL OS user (state files, .pgpass)',
    longdesc: `Directory that holds the state files (.migration_state_<database>), the baseline database
list and the cutover logs on this node, and the default .pgpass. Empty: the parent of the pgdata
parameter of the source cluster's primitive, else the home directory of the OS user postgres.`,
  },
  {
    name: 'target_pghome',
    kind: 'path-or-empty',
    type: 'string',
    default: '',
    group: 'access',
    shortdesc: 'Home of the target PostgreSQL OS user (.pgpass)',
    longdesc: `Home directory of the target cluster's PostgreSQL OS user; its .pgpass is the default
target_pgpassfile. Empty: discovered like source_pghome from the target cluster's primitive.`,
  },
  {
    name: 'source_pgpassfile',
    kind: 'path-or-empty',
    type: 'string',
    default: '',
    reloadable: true,
    group: 'access',
    shortdesc: 'Password file for connections to the source',
    longdesc: `libpq password file (host:port:database:user:password) the agent reads for its connections
to the source cluster. Empty: source_pghome/.pgpass. Passwords never appear in logs, process
arguments, state files or subscription definitions.`,
  },
  {
    name: 'target_pgpassfile',
    kind: 'path-or-empty',
    type: 'string',
    default: '',
    reloadable: true,
    group: 'access',
    shortdesc: 'Password file for connections to the target',
    longdesc: `libpq password file the agent reads for its connections to the target cluster. Empty:
target_pghome/.pgpass. The target's PostgreSQL server needs its own password file entry for
source_replication_vip, because its subscriptions log in to the source themselves.`,
  },
  {
    name: 'sslmode',
    kind: 'choice',
    type: 'string',
    default: 'prefer',
    choices: ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'],
    group: 'access',
    shortdesc: 'libpq sslmode of all migration connections',
    longdesc: `libpq sslmode for the subscriptions' connections and the agent's own connections:
disable, allow, prefer (default), require, verify-ca or verify-full. Whatever the mode, the agent
never sends the password in clear text (pg_hba method password) over a connection whose server
certificate it has not verified, and subscriptions on PostgreSQL 16 or later refuse to either
(require_auth): use scram-sha-256, or verify-ca/verify-full with sslrootcert. Only verify-full
(or verify-ca) stops an impostor at a cluster's address from being talked to at all; see the
README, Security model.`,
  },
  {
    name: 'sslrootcert',
    kind: 'path-or-empty',
    type: 'string',
    default: '',
    group: 'access',
    shortdesc: 'CA certificate file that verifies the servers',
    longdesc: `File (PEM) of the certificate authority the PostgreSQL servers' certificates must chain to, at
the same path on every node of both clusters and readable by root and by the PostgreSQL OS user:
the agent reads it, pg_dump gets it (PGSSLROOTCERT), and the subscriptions' connection strings name
it for their servers' own libpq. Used with sslmode=verify-ca or verify-full, and with require,
which then verifies the certificate chain as libpq does. Empty: libpq's default,
~/.postgresql/root.crt of each side's PostgreSQL OS user.`,
  },
  {
    name: 'source_pg_bindir',
    kind: 'path-or-empty',
    type: 'string',
    default: '',
    reloadable: true,
    group: 'access',
    shortdesc: 'PostgreSQL client programs of the source version',
    longdesc: `Directory of the source version's client programs, e.g. /usr/lib/postgresql17/bin. Used only
for diagnostics; empty: PATH.`,
  },
  {
    name: 'target_pg_bindir',
    kind: 'path-or-empty',
    type: 'string',
    default: '',
    reloadable: true,
    group: 'access',
    shortdesc: 'PostgreSQL client programs of the target version (pg_dump, pg_restore)',
    longdesc: `Directory of the target version's client programs, e.g. /usr/lib/postgresql18/bin. Its
pg_dump (whose version must be at least the source's) and pg_restore copy the schema when schema_copy=auto.
Empty: pg_dump from PATH.`,
  },
  {
    name: 'publication_name',
    kind: 'prefix',
    type: 'string',
    default: 'pgtwin_migrate_forward_pub',
    group: 'names',
    shortdesc: 'Prefix of the forward publications',
    longdesc: `Prefix of the forward publication names: <prefix>_<database token>.`,
  },
  {
    name: 'subscription_name',
    kind: 'prefix',
    type: 'string',
    default: 'pgtwin_migrate_forward_sub',
    group: 'names',
    shortdesc: 'Prefix of the forward subscriptions',
    longdesc: `Prefix of the forward subscription names: <prefix>_<database token>.`,
  },
  {
    name: 'replication_slot_name',
    kind: 'prefix',
    type: 'string',
    default: 'pgtwin_migrate_forward_slot',
    group: 'names',
    shortdesc: 'Prefix of the forward replication slots',
    longdesc: `Prefix of the forward replication slot names: <prefix>_<database token>. The token is the
database name when that makes a valid slot name ([a-z0-9_], at most 63 bytes in all), otherwise
a sanitised form of it plus a hash of the exact name.`,
  },
  {
    name: 'reverse_publication_name',
    kind: 'prefix',
    type: 'string',
    default: 'pgtwin_migrate_reverse_pub',
    group: 'names',
    shortdesc: 'Prefix of the reverse publications',
    longdesc: `Prefix of the reverse publication names (on the target, after cutover).`,
  },
  {
    name: 'reverse_subscription_name',
    kind: 'prefix',
    type: 'string',
    default: 'pgtwin_migrate_reverse_sub',
    group: 'names',
    shortdesc: 'Prefix of the reverse subscriptions',
    longdesc: `Prefix of the reverse subscription names (on the source, after cutover).`,
  },
  {
    name: 'reverse_replication_slot_name',
    kind: 'prefix',
    type: 'string',
    default: 'pgtwin_migrate_reverse_slot',
    group: 'names',
    shortdesc: 'Prefix of the reverse replication slots',
    longdesc: `Prefix of the reverse replication slot names (on the target, after cutover).`,
  },
  {
    name: 'schema_copy',
    kind: 'choice',
    type: 'string',
    default: 'auto',
    choices: ['auto', 'never'],
    reloadable: true,
    group: 'behaviour',
    shortdesc: 'Copy missing table definitions to the target: auto or never',
    longdesc: `auto (default): when the target lacks published tables, start copies the schema with
pg_dump --schema-only and pg_restore (from target_pg_bindir) into the target. never: start refuses and lists
the missing tables with the command that would create them.`,
  },
  {
    name: 'ddl_replication',
    kind: 'boolean',
    type: 'boolean',
    default: 'true',
    group: 'behaviour',
    shortdesc: 'Replicate DDL with the data',
    longdesc: `Capture DDL on the source with an event trigger and replay it on the target in commit order
with the data (and the other way after cutover). Statements that cannot be replayed safely are
recorded and reported by monitor and status.`,
  },
  {
    name: 'sequence_sync',
    kind: 'boolean',
    type: 'boolean',
    default: 'true',
    reloadable: true,
    group: 'behaviour',
    shortdesc: 'Carry sequence values over at cutover',
    longdesc: `Copy every sequence value (bare, serial and identity) from source to target during the
cutover, while writes are fenced, and verify it. Logical replication does not replicate sequences.`,
  },
  {
    name: 'teardown_on_stop',
    kind: 'boolean',
    type: 'boolean',
    default: 'false',
    reloadable: true,
    group: 'behaviour',
    shortdesc: 'Remove all replication objects on stop',
    longdesc: `false (default): stop only stops managing; replication keeps flowing and a later start
resumes it without copying again. true: stop removes every object the migration created on both
clusters, as the teardown command does.`,
  },
  {
    name: 'lag_threshold',
    kind: 'count',
    type: 'integer',
    default: '1024',
    reloadable: true,
    group: 'behaviour',
    shortdesc: 'Largest lag (bytes) at which a cutover may begin',
    longdesc: `Replication lag in bytes, measured on the source for every database, under which the cutover
may fence writes. Larger lag means a longer read-only window. Under a steady write load the lag
in bytes seldom falls that low although the target keeps up, so a database also counts as
caught up when its slot has confirmed every position the source had half a second earlier.`,
  },
  {
    name: 'monitor_interval',
    kind: 'ignored',
    type: 'integer',
    default: '10',
    reloadable: true,
    group: 'behaviour',
    shortdesc: 'Accepted for compatibility; not used',
    longdesc: `Accepted for compatibility with earlier configurations and not used: the monitor interval
is the interval of the monitor operation.`,
  },
  {
    name: 'metrics_file',
    kind: 'path-or-empty',
    type: 'string',
    default: '',
    reloadable: true,
    group: 'behaviour',
    shortdesc: 'Prometheus textfile the monitor writes',
    longdesc: `When set, every monitor writes the migration's metrics (per-database lag in bytes and
seconds, tables synchronised and total, bytes copied, state, phase, cutover step and the last
cutover's read-only window) to this file in the Prometheus exposition format, atomically, for
node_exporter's textfile collector (e.g. /var/lib/prometheus/node-exporter/pgtwin_migrate.prom).`,
  },
  {
    name: 'cutover_ready',
    kind: 'boolean',
    type: 'boolean',
    default: 'false',
    reloadable: true,
    group: 'cutover',
    shortdesc: 'Set to true to run the cutover (false, then true again: the failback)',
    longdesc: `Set to true (crm resource param migration-forward set cutover_ready true; pcs resource
update migration-forward cutover_ready=true; or the pgtwin-migrate cutover command) to run the one atomic cutover of all databases: fence writes on
the source, prove every database in sync, carry sequences over, swap the VIP addresses in one
CIB update, let the target take writes once the production address provably leads there, and
open reverse replication; the resource then stays up in phase reverse and watches the way back.
In phase reverse, setting it to false and then to true again runs the failback (the same atomic
operation back to the source; pgtwin-migrate failback). Applied by reload, without a restart.
A switch that failed is not retried, and a completed one not followed by another, until this
has been false once.`,
  },
  {
    name: 'finish',
    kind: 'boolean',
    type: 'boolean',
    default: 'false',
    reloadable: true,
    group: 'cutover',
    shortdesc: 'Set to true in phase reverse to end the way back (pgtwin-migrate finish)',
    longdesc: `In phase reverse (after a completed cutover), true (crm resource param migration-forward
set finish true; pcs resource update migration-forward finish=true) ends the migration
deliberately, as pgtwin-migrate finish --yes does: reverse replication, the write fences and every object of the
migration are removed from both clusters, the migration is recorded finished, finish is set
back to false and the resource stops. Failback is impossible afterwards. In any other phase it is
ignored and set back to false (it never waits for a later cutover). Applied by reload.`,
  },
  {
    name: 'cutover_debug',
    kind: 'boolean',
    type: 'boolean',
    default: 'false',
    reloadable: true,
    group: 'cutover',
    shortdesc: 'Debug logging for the agent and the cutover',
    longdesc: `Log debug lines (every step, query timing, decisions) for all actions and the cutover log.`,
  },
  {
    name: 'sync_timeout',
    kind: 'seconds',
    type: 'integer',
    default: '300',
    reloadable: true,
    group: 'cutover',
    shortdesc: 'Longest wait (s) for every database to sync after the fence',
    longdesc: `Seconds the cutover waits, after writes are fenced, for every forward slot to confirm the
fence position. When it passes, the cutover rolls back and the source takes writes again.`,
  },
  {
    name: 'quiesce_timeout',
    kind: 'count',
    type: 'integer',
    default: '10',
    reloadable: true,
    group: 'cutover',
    shortdesc: 'Seconds in-flight writes get to finish before they are ended',
    longdesc: `Seconds write transactions already running on the source get to commit after the source has
been made read-only; those still running then are terminated.`,
  },
] as const satisfies readonly ParamSpec[];

export type ParamName = (typeof PARAMS)[number]['name'];

export const PARAM_BY_NAME: ReadonlyMap<string, ParamSpec> = new Map(PARAMS.map((p) => [p.name, p]));
