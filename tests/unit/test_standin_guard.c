/* test_standin_guard: the station's decision to send a simulator stand-in
 * (vpi/standin.h) to a device (flow_standin_allowed, src/flows/bootstrap.c).
 * Over real USB a stand-in goes only where BOTH the operator started a
 * rehearsal (`daemon --rehearse-usb`) AND the device's iProduct says it is a
 * virtual Pi; every other combination is the refusal. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "flows/flows.h"
#include "vpi/standin.h"

static struct transport dev(enum transport_kind kind, const char *product)
{
	struct transport t;

	memset(&t, 0, sizeof(t));
	t.kind = kind;
	t.vid = 0x0a5c;
	t.pid = 0x2712;
	snprintf(t.port_path, sizeof(t.port_path), "1-1");
	snprintf(t.product, sizeof(t.product), "%s", product);
	return t;
}

static const char *const virtual_pi = "BCM2712 Boot (" VPI_USB_PRODUCT_MARK ")";

static void test_virtual_transport_always(void **state)
{
	struct flow_ctx c;
	struct transport t = dev(TRANSPORT_SIM, "");

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_true(flow_standin_allowed(&c, &t));
	t.kind = TRANSPORT_TCP; /* not libusb: never a board's boot ROM */
	assert_true(flow_standin_allowed(&c, &t));
}

static void test_usb_refused_without_rehearsal(void **state)
{
	struct flow_ctx c;
	struct transport t = dev(TRANSPORT_USB, virtual_pi);

	(void)state;
	memset(&c, 0, sizeof(c));
	/* the device says virtual Pi, but the operator did not ask */
	assert_false(flow_standin_allowed(&c, &t));
	snprintf(t.product, sizeof(t.product), "BCM2712 Boot");
	assert_false(flow_standin_allowed(&c, &t));
}

static void test_usb_refused_to_a_real_board_in_rehearsal(void **state)
{
	static const char *const real[] = { "BCM2712 Boot", "BCM2711 Boot", "BCM2710 Boot",
					     "USB download gadget", "", "rpi-sb-provisioner",
					     "virtual Pi" };
	struct flow_ctx c;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.rehearse_usb = true;
	for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
		struct transport t = dev(TRANSPORT_USB, real[i]);

		assert_false(flow_standin_allowed(&c, &t));
	}
}

static void test_usb_allowed_with_both(void **state)
{
	struct flow_ctx c;
	struct transport t = dev(TRANSPORT_USB, virtual_pi);

	(void)state;
	memset(&c, 0, sizeof(c));
	c.rehearse_usb = true;
	assert_true(flow_standin_allowed(&c, &t));
	/* the fastboot gadget stage: the marker alone fills iProduct */
	t.vid = 0x18d1;
	t.pid = 0x4e40;
	snprintf(t.product, sizeof(t.product), "%s", VPI_USB_PRODUCT_MARK);
	assert_true(flow_standin_allowed(&c, &t));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_virtual_transport_always),
		cmocka_unit_test(test_usb_refused_without_rehearsal),
		cmocka_unit_test(test_usb_refused_to_a_real_board_in_rehearsal),
		cmocka_unit_test(test_usb_allowed_with_both),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
