/* Checks on decoded protobuf-c messages (see pb.h). */
#include "pb.h"

#include <stddef.h>
#include <stdint.h>

/* The sub-message in field fd of m, or NULL (absent, or another member
 * of its oneof holds the union). */
static const ProtobufCMessage *
pb_sub(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
	const char *base = (const char *)m;

	if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
	    *(const uint32_t *)(base + fd->quantifier_offset) != fd->id)
		return NULL;
	return *(const ProtobufCMessage *const *)(base + fd->offset);
}

bool
pb_tags_valid(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;

	for (unsigned i = 0; i < m->n_unknown_fields; i++)
		if (m->unknown_fields[i].tag == 0)
			return false;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];

		if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n =
				*(const size_t *)(base + fd->quantifier_offset);
			const ProtobufCMessage *const *v =
				*(const ProtobufCMessage *const *const
					  *)(base + fd->offset);

			for (size_t k = 0; k < n; k++)
				if (!pb_tags_valid(v[k]))
					return false;
		} else {
			const ProtobufCMessage *sub = pb_sub(m, fd);

			if (sub && !pb_tags_valid(sub))
				return false;
		}
	}
	return true;
}
