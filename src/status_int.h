/*
 * status_int.h - what status.c shares with status_cluster.c, which renders
 * the cluster's part of .topicfs/status and .topicfs/metrics.
 */
#ifndef TFS_STATUS_INT_H
#define TFS_STATUS_INT_H

#include <jansson.h>

#include "status.h"

void status_put_int(json_t *o, const char *key, uint64_t v);

/* A partition of the snapshot, as the cluster metrics need it. */
struct status_part {
	const char *topic;
	uint32_t topic_id;
	uint32_t index;
};

/* The top-level "cluster" object. */
json_t *status_cluster_json(const struct tfs_node_info *n);

/* A partition's role, leader, epoch, replicas, ISR and replica lags. */
void status_cluster_partition(json_t *o, const struct tfs_node_info *n,
			      uint32_t topic, uint32_t part);

/* The cluster's metric families. */
void status_cluster_metrics(struct tfs_buf *b, const struct tfs_node_info *n,
			    const struct status_part *parts, size_t nparts);

/* The # HELP and # TYPE lines of a family. */
void status_family_header(struct tfs_buf *b, const char *name,
			  const char *type, const char *help);

#endif
