/* test_ports: port-path formatting, classification, allow-list decisions,
 * debounce across re-enumeration, and duplicate suppression. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "station/ports.h"

static void test_path_format(void **state)
{
	uint8_t chain[] = { 1, 2, 3 };
	char buf[32];

	assert_int_equal(usb_port_path_format(1, chain, 1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1-1");
	assert_int_equal(usb_port_path_format(3, chain, 3, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "3-1.2.3");
	assert_int_equal(usb_port_path_format(1, chain, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(usb_port_path_format(1, chain, 3, buf, 5), -ENOSPC);

	assert_true(usb_port_path_valid("1-1"));
	assert_true(usb_port_path_valid("12-1.4.2"));
	assert_false(usb_port_path_valid("1-"));
	assert_false(usb_port_path_valid("1-1."));
	assert_false(usb_port_path_valid("112"));   /* the separator-less form is never used */
	assert_false(usb_port_path_valid("1-1.2/../x"));
	assert_false(usb_port_path_valid(""));
}

static void test_classify(void **state)
{
	assert_int_equal(usb_classify(0x0a5c, 0x2711, NULL), USB_ROLE_BOOTROM);
	assert_int_equal(usb_classify(0x0a5c, 0x2712, "Broadcom"), USB_ROLE_BOOTROM);
	assert_int_equal(usb_classify(0x0a5c, 0x2764, NULL), USB_ROLE_BOOTROM);
	assert_int_equal(usb_classify(0x0a5c, 0x2710, NULL), USB_ROLE_OTHER);
	assert_int_equal(usb_classify(0x18d1, 0x4e40, "Raspberry Pi"), USB_ROLE_GADGET);
	assert_int_equal(usb_classify(0x18d1, 0x4e40, "Google"), USB_ROLE_OTHER); /* a phone */
	assert_int_equal(usb_classify(0x18d1, 0x4e40, NULL), USB_ROLE_OTHER);
	assert_int_equal(usb_classify(0x1d6b, 0x0002, NULL), USB_ROLE_OTHER);
}

static struct port_arrival arr(const char *port, enum usb_role role, const char *serial,
			       bool permitted, uint64_t now)
{
	return (struct port_arrival){ .port = port, .role = role, .serial = serial,
				      .permitted = permitted, .now_ms = now };
}

static void test_excluded_and_ignored(void **state)
{
	struct port_tracker *t;
	struct port_arrival a;

	assert_int_equal(ports_new(2000, &t), 0);
	a = arr("1-1.4", USB_ROLE_BOOTROM, "c85be8ea", false, 0);
	assert_int_equal(ports_arrived(t, &a), PORT_EXCLUDED);
	assert_false(ports_job_active(t, "1-1.4"));
	a = arr("1-1.4", USB_ROLE_OTHER, "", true, 0);
	assert_int_equal(ports_arrived(t, &a), PORT_IGNORED);
	ports_free(t);
}

static void test_reenumeration_continues_job(void **state)
{
	struct port_tracker *t;
	struct port_arrival a;

	assert_int_equal(ports_new(2000, &t), 0);
	a = arr("1-1.2", USB_ROLE_BOOTROM, "c85be8ea", true, 0);
	assert_int_equal(ports_arrived(t, &a), PORT_START_JOB);
	ports_left(t, "1-1.2", 1000);
	assert_int_equal(ports_expire(t, 2500, NULL, NULL), 0);    /* 1.5 s gone: within window */
	a = arr("1-1.2", USB_ROLE_GADGET, "c561b701c85be8ea", true, 2600);
	assert_int_equal(ports_arrived(t, &a), PORT_CONTINUE_JOB);
	assert_true(ports_job_active(t, "1-1.2"));
	ports_job_ended(t, "1-1.2");
	assert_false(ports_job_active(t, "1-1.2"));
	a = arr("1-1.2", USB_ROLE_BOOTROM, "11112222", true, 9000);  /* next board */
	assert_int_equal(ports_arrived(t, &a), PORT_START_JOB);
	ports_free(t);
}

static int gone_count;
static char gone_port[32];

static void on_gone(void *usrptr, const char *port)
{
	gone_count++;
	strncpy(gone_port, port, sizeof(gone_port) - 1);
}

static void test_gone_too_long_fails(void **state)
{
	struct port_tracker *t;
	struct port_arrival a;

	gone_count = 0;
	assert_int_equal(ports_new(2000, &t), 0);
	a = arr("1-1.3", USB_ROLE_GADGET, "c561b701c85be8ea", true, 0);
	assert_int_equal(ports_arrived(t, &a), PORT_START_JOB);
	ports_left(t, "1-1.3", 100);
	assert_int_equal(ports_expire(t, 2099, on_gone, NULL), 0);
	assert_int_equal(ports_expire(t, 2100, on_gone, NULL), 1);
	assert_int_equal(gone_count, 1);
	assert_string_equal(gone_port, "1-1.3");
	assert_false(ports_job_active(t, "1-1.3"));
	assert_int_equal(ports_expire(t, 5000, on_gone, NULL), 0);   /* reported once */
	ports_free(t);
}

static void test_duplicates_never_start_a_second_job(void **state)
{
	struct port_tracker *t;
	struct port_arrival a;

	assert_int_equal(ports_new(2000, &t), 0);
	a = arr("1-1.2", USB_ROLE_BOOTROM, "c85be8ea", true, 0);
	assert_int_equal(ports_arrived(t, &a), PORT_START_JOB);
	/* A second descriptor on the same port while the board is present. */
	assert_int_equal(ports_arrived(t, &a), PORT_DUPLICATE);
	/* The same board (8-hex ROM serial) seen on another port... */
	a = arr("1-1.3", USB_ROLE_BOOTROM, "C85BE8EA", true, 10);
	assert_int_equal(ports_arrived(t, &a), PORT_DUPLICATE);
	/* ...or its 16-hex gadget serial whose low half matches. */
	a = arr("1-1.3", USB_ROLE_GADGET, "c561b701c85be8ea", true, 20);
	assert_int_equal(ports_arrived(t, &a), PORT_DUPLICATE);
	/* A different board on another port is a new job. */
	a = arr("1-1.3", USB_ROLE_BOOTROM, "0badf00d", true, 30);
	assert_int_equal(ports_arrived(t, &a), PORT_START_JOB);
	/* Boards without a serial are told apart by port alone. */
	a = arr("1-1.4", USB_ROLE_BOOTROM, "", true, 40);
	assert_int_equal(ports_arrived(t, &a), PORT_START_JOB);
	ports_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_format),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_excluded_and_ignored),
		cmocka_unit_test(test_reenumeration_continues_job),
		cmocka_unit_test(test_gone_too_long_fails),
		cmocka_unit_test(test_duplicates_never_start_a_second_job),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
