/* test_vpi_gadget: the USB gadget relay's protocol followers: which control
 * requests announce bulk OUT bytes (rpiboot), which fastboot replies do, and
 * how a control IN reply is cut for GadgetFS's 256-byte limit. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "vpi/gadget.h"

static struct usb_ctrl_setup out0(uint32_t len)
{
	struct usb_ctrl_setup s = { 0x40, 0, (uint16_t)len, (uint16_t)(len >> 16), 0 };
	return s;
}

static const struct usb_ctrl_setup filemsg_req = { 0xc0, 0, 260, 0, 260 };

static void filemsg(uint8_t *buf, uint32_t cmd, const char *name)
{
	memset(buf, 0, 260);
	buf[0] = (uint8_t)cmd;
	strcpy((char *)buf + 4, name);
}

static void test_rom_announces(void **state)
{
	struct vpi_gadget_rpiboot st = { .rom = true, .last_command = -1 };
	struct usb_ctrl_setup s = out0(24);

	(void)state;
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 24);
	s = out0(0x1872c);   /* 100140: the high half travels in wIndex */
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 100140);
}

static void test_stage2_size_reply_is_not_an_announce(void **state)
{
	struct vpi_gadget_rpiboot st = { .rom = false, .last_command = -1 };
	struct usb_ctrl_setup s = out0(254);
	uint8_t msg[260];

	(void)state;
	filemsg(msg, 0, "config.txt");   /* GetFileSize */
	vpi_gadget_rpiboot_in(&st, &filemsg_req, msg, 15);
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 0);
	filemsg(msg, 1, "config.txt");   /* ReadFile */
	vpi_gadget_rpiboot_in(&st, &filemsg_req, msg, 15);
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 254);
	/* a second 0x40 after a GetFileSize answer is an announce again */
	filemsg(msg, 0, "x");
	vpi_gadget_rpiboot_in(&st, &filemsg_req, msg, 6);
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 0);
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 254);
}

static void test_other_requests_announce_nothing(void **state)
{
	struct vpi_gadget_rpiboot st = { .rom = true, .last_command = -1 };
	struct usb_ctrl_setup s = { 0x41, 0, 24, 0, 0 };

	(void)state;
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 0);
	s = (struct usb_ctrl_setup){ 0x40, 1, 24, 0, 0 };
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 0);
	s = (struct usb_ctrl_setup){ 0x40, 0, 24, 0, 4 };
	assert_int_equal(vpi_gadget_rpiboot_out(&st, &s), 0);
}

static void test_gadgetfs_reply_len(void **state)
{
	uint8_t msg[260], big[300];

	(void)state;
	filemsg(msg, 1, "config.txt");
	assert_int_equal(vpi_gadget_gadgetfs_reply_len(msg, 260), 4 + 10 + 1);
	assert_int_equal(vpi_gadget_gadgetfs_reply_len(msg, 4), 4);
	assert_int_equal(vpi_gadget_gadgetfs_reply_len(msg, 255), 255);
	memset(msg + 4, 'a', 252);   /* name too long to cut before 255 */
	assert_int_equal(vpi_gadget_gadgetfs_reply_len(msg, 260), VPI_GADGETFS_CTRL_MAX);
	memset(big, 0, sizeof(big));
	assert_int_equal(vpi_gadget_gadgetfs_reply_len(big, 300), VPI_GADGETFS_CTRL_MAX);
}

static void test_fastboot(void **state)
{
	uint64_t len = 0;

	(void)state;
	assert_true(vpi_gadget_fastboot_is_download((const uint8_t *)"download:00100000", 17));
	assert_false(vpi_gadget_fastboot_is_download((const uint8_t *)"upload", 6));
	assert_false(vpi_gadget_fastboot_is_download((const uint8_t *)"download", 8));
	assert_int_equal(vpi_gadget_fastboot_reply((const uint8_t *)"DATA00100000", 12, &len), 1);
	assert_int_equal(len, 0x100000);
	assert_int_equal(vpi_gadget_fastboot_reply((const uint8_t *)"INFOhello", 9, &len), -1);
	assert_int_equal(vpi_gadget_fastboot_reply((const uint8_t *)"TEXTx", 5, &len), -1);
	assert_int_equal(vpi_gadget_fastboot_reply((const uint8_t *)"OKAY", 4, &len), 0);
	assert_int_equal(vpi_gadget_fastboot_reply((const uint8_t *)"FAILno", 6, &len), 0);
	assert_int_equal(vpi_gadget_fastboot_reply((const uint8_t *)"DATA0010000g", 12, &len), 0);
	assert_int_equal(vpi_gadget_fastboot_reply((const uint8_t *)"DATA001", 7, &len), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rom_announces),
		cmocka_unit_test(test_stage2_size_reply_is_not_an_announce),
		cmocka_unit_test(test_other_requests_announce_nothing),
		cmocka_unit_test(test_gadgetfs_reply_len),
		cmocka_unit_test(test_fastboot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
