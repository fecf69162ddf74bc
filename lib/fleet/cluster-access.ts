/**
 * How a fleet cluster is reached, from its entry in the fleet file and the deployment's settings.
 */
import type { ClusterConfig, Config } from '../config';
import type { CredentialsProvider } from '../cluster/eks-token';
import { ConfigError } from '../errors';
import { assumedRoleCredentials } from './credentials';
import type { FleetCluster } from './fleet-file';

/**
 * How the pass reaches a cluster: FLEET_KUBECONFIGS, else the fleet file's EKS entry (signed
 * in to as the cluster's session, or as its `roleArn` assumed from that session), else the
 * deployment's own cluster.
 */
export function clusterAccess(base: Config, entry: FleetCluster, session?: CredentialsProvider): ClusterConfig {
  const common = { name: entry.name, requestTimeoutSeconds: base.cluster.requestTimeoutSeconds };
  const kubeconfig = base.fleetKubeconfigs?.[entry.name];
  if (kubeconfig) return { ...common, kubeconfig };
  if (entry.eks) {
    const credentials = entry.eks.roleArn
      ? assumedRoleCredentials({ roleArn: entry.eks.roleArn, sessionName: `dsgitops-pass-${entry.name}`, region: entry.eks.region, ...(base.stsEndpoint ? { endpoint: base.stsEndpoint } : {}), ...(session ? { credentials: session } : {}) })
      : session;
    return { ...common, eks: { clusterName: entry.eks.clusterName, region: entry.eks.region, ...(credentials ? { credentials } : {}) } };
  }
  if (entry.name === base.cluster.name) return { ...base.cluster };
  throw new ConfigError(`cluster ${entry.name}: no way to reach it: give it eks: { name, region } in the fleet file, or a kubeconfig in FLEET_KUBECONFIGS (${entry.name}=PATH)`);
}
