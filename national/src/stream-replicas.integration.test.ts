import { natsServers } from "@evc-interop/runtime";
import { type PrivateNats, startNatsCluster, startTestHub } from "@evc-interop/testing";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * On a three-node NATS cluster the directive stream must be R3 (national/README.md, "Running it
 * in production"): the hub provisions it with EVC_STREAM_REPLICAS copies on every start, so a
 * restart keeps it so, and NATS_URL may name every node of the cluster, separated by commas.
 */
let cluster: PrivateNats;

beforeAll(async () => {
  cluster = await startNatsCluster(3);
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

describe("the directive stream on a three-node cluster", () => {
  it("has the replicas EVC_STREAM_REPLICAS says, after the first start and after a restart", async () => {
    expect(natsServers(cluster.url)).toHaveLength(3);
    const env = await startTestHub({ natsUrl: cluster.url, streamReplicas: 3 });
    const nc = await connect({ servers: natsServers(cluster.url) });
    try {
      const jsm = await jetstreamManager(nc);
      const replicas = async () => (await jsm.streams.info(env.config.stream)).config.num_replicas;
      expect(await replicas()).toBe(3);
      // A replica started later provisions again, with the same config: nothing changes.
      const again = await env.startReplica();
      expect(await replicas()).toBe(3);
      await again.stop();
    } finally {
      await nc.close();
      await env.close();
    }
  }, 60_000);
});
