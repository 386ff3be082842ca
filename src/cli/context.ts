/**
 * The human commands run the same library functions as the OCF actions.
 * Their parameters come from OCF_RESKEY_* variables when those are set, or
 * from the migration resource in the CIB (the one named by --resource, or
 * the only pgtwin-migrate primitive there); with --resource, variables of
 * the environment override the CIB's values.
 */
import { readOcfEnv } from '../ocf/env';
import { Logger, setLogger } from '../ocf/log';
import { Deadline } from '../ocf/deadline';
import { loadConfig } from '../ocf/config';
import { OCF, OcfError } from '../ocf/exit-codes';
import { parseBoolean } from '../ocf/config';
import { readResourcesSection } from '../cluster/resources';
import { findAll } from '../cluster/xml';
import type { ActionContext } from '../ocf/run-action';
import { AGENT_NAME } from '../ocf/metadata';

export interface CliOptions {
  readonly resource?: string;
  readonly timeout: number;
}

async function paramsFromCib(resource: string | undefined, timeoutMs: number): Promise<{ id: string; env: Record<string, string> } | undefined> {
  let resources;
  try {
    resources = await readResourcesSection(timeoutMs);
  } catch (err) {
    if (resource) throw err;
    return undefined;
  }
  const agents = findAll(resources, (e) => e.tag === 'primitive' && e.attrs.type === AGENT_NAME && e.attrs.class === 'ocf');
  const chosen = resource ? agents.find((a) => a.attrs.id === resource) : agents.length === 1 ? agents[0] : undefined;
  if (resource && !chosen) {
    throw new OcfError(OCF.ERR_CONFIGURED, `no ${AGENT_NAME} resource named ${resource} in the CIB; see crm configure show`);
  }
  if (!chosen) {
    if (agents.length > 1) {
      throw new OcfError(OCF.ERR_CONFIGURED, `${agents.length} ${AGENT_NAME} resources in the CIB (${agents.map((a) => a.attrs.id).join(', ')}); pick one with --resource`);
    }
    return undefined;
  }
  const env: Record<string, string> = {};
  for (const set of chosen.children.filter((c) => c.tag === 'instance_attributes')) {
    for (const nv of set.children.filter((c) => c.tag === 'nvpair')) {
      if (nv.attrs.name !== undefined) env[`OCF_RESKEY_${nv.attrs.name}`] = nv.attrs.value ?? '';
    }
  }
  return { id: chosen.attrs.id!, env };
}

export async function cliContext(action: string, opts: CliOptions): Promise<ActionContext> {
  const hasEnvParams = Object.keys(process.env).some((k) => k.startsWith('OCF_RESKEY_') && !k.startsWith('OCF_RESKEY_CRM_meta'));
  // Parameters in the environment describe the migration completely; the CIB is read only when asked (--resource) or needed.
  const fromCib = opts.resource || !hasEnvParams ? await paramsFromCib(opts.resource, 10_000) : undefined;
  if (!fromCib && !hasEnvParams) {
    throw new OcfError(OCF.ERR_CONFIGURED, `no ${AGENT_NAME} resource in the CIB and no OCF_RESKEY_* variables; pass --resource or set the parameters`);
  }
  const procEnv: NodeJS.ProcessEnv = {
    ...fromCib?.env,
    ...process.env,
    OCF_RESOURCE_INSTANCE: opts.resource ?? process.env.OCF_RESOURCE_INSTANCE ?? fromCib?.id,
  };
  const env = readOcfEnv(procEnv);
  const log = new Logger(env, { stderrLevel: 'warn' });
  setLogger(log);
  if (parseBoolean(procEnv.OCF_RESKEY_cutover_debug ?? '') === true) log.enableDebug();
  const cfg = loadConfig(procEnv);
  return { action, cfg, env, log, deadline: new Deadline(opts.timeout * 1000), probe: false };
}
