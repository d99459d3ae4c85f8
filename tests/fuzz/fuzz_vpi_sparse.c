/* fuzz_vpi_sparse: the virtual Pi's sparse reader on arbitrary bytes. Every
 * op it reports must lie inside the expanded image, RAW data inside the input,
 * and check/walk must agree. */
#include <stdint.h>
#include <stdlib.h>

#include "vpi/sparse_dev.h"

struct bounds {
	const uint8_t *base;
	size_t size;
	uint64_t expanded, next;
};

static int check_op(void *usrptr, const struct vpi_sparse_op *op)
{
	struct bounds *b = usrptr;

	if (op->offset < b->next || op->len > b->expanded || op->offset > b->expanded - op->len)
		abort();
	if (op->type == VPI_SPARSE_RAW &&
	    (op->data < b->base || op->len > b->size || op->data > b->base + (b->size - op->len)))
		abort();
	b->next = op->offset + op->len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bounds b = { .base = data, .size = size };
	int rc = vpi_sparse_check(data, size, NULL, &b.expanded, NULL);

	if (vpi_sparse_walk(data, size, check_op, &b) != rc)
		abort();
	if (rc == 0 && b.next > b.expanded)
		abort();
	return 0;
}
