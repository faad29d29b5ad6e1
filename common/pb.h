/* Checks on decoded protobuf-c messages that protobuf-c itself skips. */
#ifndef PARLEY_PB_H
#define PARLEY_PB_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/* True when no unknown field of m or of a message inside it has field
 * number 0. protobuf-c 1.4.1 refuses a field-0 key written in one byte but
 * keeps one written in two (0x81 0x00) as an unknown field, and packs it
 * back in one byte: the message would decode here and fail at the next
 * hop (a gateway's Command to a router, its StoreRequest to the store).
 * Field number 0 is invalid protobuf, so such a message is refused here. */
bool pb_tags_valid(const ProtobufCMessage *m);

#endif
