/*
 * status_cluster.c - the cluster's part of .topicfs/status and
 * .topicfs/metrics (docs/STATUS.md): the nodes, the etcd session, and per
 * partition this node's role, the leader, the epoch, the replicas, the
 * in-sync replicas and, where this node leads, each follower's lag.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "repair.h"
#include "status_int.h"
#include "banned.h"

static json_t *ids_json(const struct tfs_idset *s)
{
	json_t *a = json_array();

	for (uint32_t i = 0; i < s->n; i++)
		json_array_append_new(a, json_integer(s->id[i]));
	return a;
}

json_t *status_cluster_json(const struct tfs_node_info *n)
{
	struct tfs_cluster_status st;
	struct tfs_repl_stats rs;
	struct tfs_produce_stats ps = { 0 };
	struct tfs_repair_stats rps = { 0 };
	json_t *o = json_object(), *nodes = json_array();

	tfs_cluster_status(n->cluster, &st);
	tfs_repl_stats(n->repl, &rs);
	if (n->produce)
		tfs_produce_stats(n->produce, &ps);
	if (n->repair)
		tfs_repair_stats(n->repair, &rps);
	json_object_set_new(o, "name", json_string(st.name));
	status_put_int(o, "node", tfs_cluster_node_id(n->cluster));
	json_object_set_new(o, "etcd", json_string(st.etcd_ok ? "ok"
							      : "unreachable"));
	json_object_set_new(o, "lease", json_string(st.lease_ok ? "ok"
							       : "expired"));
	for (uint32_t i = 0; i < st.nnodes; i++) {
		json_t *x = json_object();

		status_put_int(x, "id", st.nodes[i].id);
		json_object_set_new(x, "address",
				    json_string(st.nodes[i].address));
		json_object_set_new(x, "host", json_string(st.nodes[i].host));
		json_object_set_new(x, "alive", json_true());
		json_array_append_new(nodes, x);
	}
	json_object_set_new(o, "nodes", nodes);
	status_put_int(o, "elections_won", st.elections_won);
	status_put_int(o, "elections_lost", st.elections_lost);
	status_put_int(o, "isr_shrinks", st.isr_shrinks);
	status_put_int(o, "isr_expands", st.isr_expands);
	status_put_int(o, "fetches_served", rs.fetches_served);
	status_put_int(o, "fetches_sent", rs.fetches_sent);
	status_put_int(o, "bytes_served", rs.bytes_served);
	status_put_int(o, "bytes_fetched", rs.bytes_fetched);
	status_put_int(o, "truncations", rs.truncations);
	status_put_int(o, "resets", rs.resets);
	status_put_int(o, "forwarded_writes", ps.forwarded);
	status_put_int(o, "local_writes", ps.local);
	status_put_int(o, "write_retries", ps.retries);
	status_put_int(o, "duplicates", ps.duplicates);
	status_put_int(o, "failed_writes", ps.failed);
	status_put_int(o, "writer_streams", ps.streams);
	status_put_int(o, "peer_requests_refused", n->peer_refused);
	status_put_int(o, "batches_repaired", rps.repaired);
	status_put_int(o, "batches_served_for_repair", rps.served);
	status_put_int(o, "repairs_without_copy", rps.failed);
	return o;
}

void status_cluster_partition(json_t *o, const struct tfs_node_info *n,
			      uint32_t topic, uint32_t part)
{
	struct tfs_part_view v;
	struct tfs_replica_lag lag[TFS_MAX_RF];

	if (tfs_cluster_view(n->cluster, topic, part, &v)) {
		json_object_set_new(o, "role", json_string("none"));
		json_object_set_new(o, "leader", json_null());
		return;
	}
	json_object_set_new(o, "role", json_string(tfs_role_name(v.role)));
	json_object_set_new(o, "leader",
			    v.leader ? json_integer(v.leader) : json_null());
	status_put_int(o, "epoch", v.epoch);
	json_object_set_new(o, "replicas", ids_json(&v.replicas));
	json_object_set_new(o, "isr", ids_json(&v.isr));
	status_put_int(o, "min_isr", v.min_isr);
	if (v.role != TFS_ROLE_LEADER)
		return;
	int k = tfs_repl_lags(n->repl, topic, part, lag, TFS_MAX_RF);
	json_t *a = json_array();
	for (int i = 0; i < k; i++) {
		json_t *x = json_object();

		status_put_int(x, "node", lag[i].node);
		status_put_int(x, "lag_bytes", lag[i].lag_bytes);
		json_object_set_new(x, "lag_ms",
				    lag[i].lag_ms < 0
					    ? json_null()
					    : json_integer(lag[i].lag_ms));
		json_object_set_new(x, "in_sync", json_boolean(lag[i].in_sync));
		json_array_append_new(a, x);
	}
	json_object_set_new(o, "replica_lag", a);
}

static void counter(struct tfs_buf *b, const char *name, const char *help,
		    uint64_t v)
{
	status_family_header(b, name, "counter", help);
	tfs_buf_addf(b, "%s %" PRIu64 "\n", name, v);
}

static void labels(struct tfs_buf *b, const char *name,
		   const struct status_part *p)
{
	tfs_buf_addf(b, "%s{topic=\"", name);
	tfs_status_escape_label(b, p->topic);
	tfs_buf_addf(b, "\",partition=\"%" PRIu32 "\"", p->index);
}

void status_cluster_metrics(struct tfs_buf *b, const struct tfs_node_info *n,
			    const struct status_part *parts, size_t nparts)
{
	struct tfs_cluster_status st;
	struct tfs_repl_stats rs;
	struct tfs_produce_stats ps = { 0 };
	struct tfs_repair_stats rps = { 0 };

	tfs_cluster_status(n->cluster, &st);
	tfs_repl_stats(n->repl, &rs);
	if (n->produce)
		tfs_produce_stats(n->produce, &ps);
	if (n->repair)
		tfs_repair_stats(n->repair, &rps);
	status_family_header(b, "topicfs_cluster_nodes", "gauge",
			     "Live nodes of the cluster, as etcd lists them.");
	tfs_buf_addf(b, "topicfs_cluster_nodes %" PRIu32 "\n", st.nnodes);
	status_family_header(b, "topicfs_cluster_etcd_up", "gauge",
			     "1 if the last etcd request got an answer.");
	tfs_buf_addf(b, "topicfs_cluster_etcd_up %d\n", st.etcd_ok);
	status_family_header(b, "topicfs_cluster_lease_ok", "gauge",
			     "1 while this node's lease is surely alive.");
	tfs_buf_addf(b, "topicfs_cluster_lease_ok %d\n", st.lease_ok);
	counter(b, "topicfs_elections_total",
		"Leader elections this node won.", st.elections_won);
	counter(b, "topicfs_isr_shrinks_total",
		"In-sync replica sets this node shrank as leader.",
		st.isr_shrinks);
	counter(b, "topicfs_isr_expands_total",
		"In-sync replica sets this node expanded as leader.",
		st.isr_expands);
	counter(b, "topicfs_replication_fetches_served_total",
		"Fetches this node answered as leader.", rs.fetches_served);
	counter(b, "topicfs_replication_fetches_total",
		"Fetches this node sent as follower.", rs.fetches_sent);
	counter(b, "topicfs_replication_bytes_served_total",
		"Answer bytes this node sent to followers (before "
		"compression).",
		rs.bytes_served);
	counter(b, "topicfs_replication_bytes_total",
		"Batch bytes this node copied from leaders.",
		rs.bytes_fetched);
	counter(b, "topicfs_replication_truncations_total",
		"Times a diverged log tail was cut here.", rs.truncations);
	counter(b, "topicfs_replication_resets_total",
		"Times a replica here started again at the leader's start "
		"(it was behind retention).",
		rs.resets);
	counter(b, "topicfs_elections_lost_total",
		"Elections this node tried and another won.",
		st.elections_lost);
	counter(b, "topicfs_forwarded_writes_total",
		"Writes made here that another node (the leader) took.",
		ps.forwarded);
	counter(b, "topicfs_write_retries_total",
		"Retries of writes through leadership changes.", ps.retries);
	counter(b, "topicfs_duplicate_writes_total",
		"Retried writes a leader recognised and did not append again.",
		ps.duplicates);
	counter(b, "topicfs_failed_writes_total",
		"Writes that failed with EIO or another error.", ps.failed);
	counter(b, "topicfs_peer_requests_refused_total",
		"Peer requests refused for a bad signature, time or a replay.",
		n->peer_refused);
	counter(b, "topicfs_repair_batches_total",
		"Damaged batches mended here with another replica's copy.",
		rps.repaired);
	counter(b, "topicfs_repair_batches_served_total",
		"Batches this node gave other replicas to mend theirs.",
		rps.served);
	counter(b, "topicfs_repair_misses_total",
		"Repairs of a damaged range that found no good copy.",
		rps.failed);

	status_family_header(b, "topicfs_partition_leader", "gauge",
			     "1 where this node leads the partition.");
	for (size_t i = 0; i < nparts; i++) {
		struct tfs_part_view v;
		int lead = !tfs_cluster_view(n->cluster, parts[i].topic_id,
					     parts[i].index, &v) &&
			   v.role == TFS_ROLE_LEADER;

		labels(b, "topicfs_partition_leader", &parts[i]);
		tfs_buf_addf(b, "} %d\n", lead);
	}
	status_family_header(b, "topicfs_partition_isr_size", "gauge",
			     "Members of the partition's in-sync replica set.");
	for (size_t i = 0; i < nparts; i++) {
		struct tfs_part_view v;

		if (tfs_cluster_view(n->cluster, parts[i].topic_id,
				     parts[i].index, &v))
			continue;
		labels(b, "topicfs_partition_isr_size", &parts[i]);
		tfs_buf_addf(b, "} %" PRIu32 "\n", v.isr.n);
	}
	status_family_header(b, "topicfs_partition_replica_lag_bytes", "gauge",
			     "Bytes a follower is behind, where this node "
			     "leads.");
	for (size_t i = 0; i < nparts; i++) {
		struct tfs_replica_lag lag[TFS_MAX_RF];
		int k = tfs_repl_lags(n->repl, parts[i].topic_id,
				      parts[i].index, lag, TFS_MAX_RF);

		for (int j = 0; j < k; j++) {
			labels(b, "topicfs_partition_replica_lag_bytes",
			       &parts[i]);
			tfs_buf_addf(b, ",replica=\"%" PRIu32 "\"} %" PRIu64
					"\n",
				     lag[j].node, lag[j].lag_bytes);
		}
	}
}
