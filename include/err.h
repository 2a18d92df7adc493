/*
 * err.h - return codes shared by every topicfs module.
 *
 * Functions return an int: 0 on success, -errno for a system error, or one
 * of the project codes below.  Project codes live in a reserved negative
 * range far below any errno, so a single int carries both.  tfs_strerror()
 * names either kind.  Codes are translated at the edges only: to an errno
 * in the FUSE module (tfs_err_to_errno), to an HTTP status in the server.
 */
#ifndef TFS_ERR_H
#define TFS_ERR_H

enum {
	TFS_E_BASE = -30000,
	TFS_ECORRUPT = TFS_E_BASE,	/* bytes on disk fail a check */
	TFS_EBELOWSTART,		/* offset below the retained start */
	TFS_ENOTBOUNDARY,		/* offset is not a batch boundary */
	TFS_ESHUTDOWN,			/* the store is closing */
	TFS_EDELETED,			/* topic was deleted */
	TFS_ESTALEEPOCH,		/* leader epoch older than ours */
	TFS_ENOTLEADER,			/* this node does not lead the partition */
	TFS_EBADCONF,			/* invalid configuration value */
	TFS_EUNAVAIL,			/* a peer or etcd cannot be reached */
	TFS_EUNKNOWN,			/* outcome unknown (timeout mid-request) */
	TFS_EAUTH,			/* a peer request failed authentication */
	TFS_ESEQUENCE,			/* a producer sequence gap */
	TFS_ENOISR,			/* fewer in-sync replicas than required */
	TFS_EPROTO,			/* a malformed peer or etcd message */
	TFS_E_END
};

/* Text for an errno or a project code (0 gives "success"). */
const char *tfs_strerror(int code);

/*
 * The errno a file-system caller should see for code (a positive value).
 * Documented mapping: TFS_ECORRUPT -> EIO, TFS_EBELOWSTART -> ENODATA,
 * TFS_ENOTBOUNDARY -> EINVAL, TFS_ESHUTDOWN -> ENOTCONN,
 * TFS_EDELETED -> ENOENT, TFS_ESTALEEPOCH/TFS_ENOTLEADER -> EIO,
 * TFS_EBADCONF -> EINVAL, TFS_EUNAVAIL/TFS_EUNKNOWN/TFS_ENOISR -> EIO,
 * TFS_EAUTH -> EACCES, TFS_ESEQUENCE/TFS_EPROTO -> EIO; -errno -> errno.
 */
int tfs_err_to_errno(int code);

#endif
