/* ffs_sink: a FunctionFS gadget function that swallows bulk OUT data and
 * streams zeros on bulk IN, as fast as the kernel lets it. The QEMU test uses
 * it to measure the libusb transport's bulk throughput over dummy_hcd without
 * a device model in the way. Vendor interface ff/00/00, bulk OUT + bulk IN
 * (the kernel picks the addresses: 0x02/0x81 on dummy_hcd).
 *
 *   ffs_sink DIR     DIR: the mounted functionfs instance (ep0 inside)
 *
 * Runs until killed; prints the bytes received when the function is unbound.
 * One thread per endpoint (poll() does not work on FunctionFS ep files). */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/usb/functionfs.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF (64 * 1024)

struct desc_block {
	struct usb_functionfs_descs_head_v2 head;
	__le32 fs_count, hs_count;
	struct {
		struct usb_interface_descriptor intf;
		struct usb_endpoint_descriptor_no_audio out, in;
	} __attribute__((packed)) fs, hs;
} __attribute__((packed));

static struct usb_interface_descriptor intf(void)
{
	return (struct usb_interface_descriptor){
		.bLength = sizeof(struct usb_interface_descriptor), .bDescriptorType = USB_DT_INTERFACE,
		.bNumEndpoints = 2, .bInterfaceClass = 0xff, .iInterface = 1,
	};
}

static struct usb_endpoint_descriptor_no_audio ep(uint8_t addr, uint16_t maxpkt)
{
	return (struct usb_endpoint_descriptor_no_audio){
		.bLength = USB_DT_ENDPOINT_SIZE, .bDescriptorType = USB_DT_ENDPOINT,
		.bEndpointAddress = addr, .bmAttributes = USB_ENDPOINT_XFER_BULK,
		.wMaxPacketSize = htole16(maxpkt),
	};
}

struct string_block {
	struct usb_functionfs_strings_head head;
	struct {
		__le16 code;
		char str[5];
	} __attribute__((packed)) lang;
} __attribute__((packed));

static char dir[256];
static unsigned long long received;

static void *sink_out(void *arg)
{
	char path[300];
	char *buf = malloc(BUF);
	int fd;

	(void)arg;
	snprintf(path, sizeof(path), "%s/ep1", dir);
	fd = open(path, O_RDONLY);
	if (fd < 0 || !buf)
		return NULL;
	for (;;) {
		ssize_t n = read(fd, buf, BUF);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != ESHUTDOWN)
				perror("ffs_sink: ep1");
			usleep(100 * 1000);
			continue;
		}
		__atomic_add_fetch(&received, (unsigned long long)n, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *source_in(void *arg)
{
	char path[300];
	char *buf = calloc(1, BUF);
	int fd;

	(void)arg;
	snprintf(path, sizeof(path), "%s/ep2", dir);
	fd = open(path, O_WRONLY);
	if (fd < 0 || !buf)
		return NULL;
	for (;;) {
		ssize_t n = write(fd, buf, BUF);

		if (n < 0 && errno != EINTR)
			usleep(100 * 1000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct desc_block d = {
		.head = { .magic = htole32(FUNCTIONFS_DESCRIPTORS_MAGIC_V2), .length = htole32(sizeof(d)),
			  .flags = htole32(FUNCTIONFS_HAS_FS_DESC | FUNCTIONFS_HAS_HS_DESC) },
		.fs_count = htole32(3), .hs_count = htole32(3),
	};
	struct string_block strings = {
		.head = { .magic = htole32(FUNCTIONFS_STRINGS_MAGIC), .length = htole32(sizeof(strings)),
			  .str_count = htole32(1), .lang_count = htole32(1) },
		.lang = { htole16(0x0409), "sink" },
	};
	struct usb_functionfs_event ev;
	char path[300];
	pthread_t a, b;
	int ep0;

	if (argc != 2) {
		fprintf(stderr, "usage: ffs_sink FUNCTIONFS_DIR\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	d.fs.intf = d.hs.intf = intf();
	d.fs.out = ep(0x01, 64);
	d.fs.in = ep(0x82, 64);
	d.hs.out = ep(0x01, 512);
	d.hs.in = ep(0x82, 512);
	snprintf(path, sizeof(path), "%s/ep0", dir);
	ep0 = open(path, O_RDWR);
	if (ep0 < 0 || write(ep0, &d, sizeof(d)) != (ssize_t)sizeof(d) ||
	    write(ep0, &strings, sizeof(strings)) != (ssize_t)sizeof(strings)) {
		perror("ffs_sink: ep0");
		return 1;
	}
	if (pthread_create(&a, NULL, sink_out, NULL) || pthread_create(&b, NULL, source_in, NULL))
		return 1;
	printf("ffs_sink: ready\n");
	fflush(stdout);
	while (read(ep0, &ev, sizeof(ev)) == (ssize_t)sizeof(ev)) {
		if (ev.type == FUNCTIONFS_SETUP) {
			/* No control requests are served: stall by answering the wrong way. */
			if (ev.u.setup.bRequestType & USB_DIR_IN) {
				if (read(ep0, NULL, 0) < 0) { /* stalled */ }
			} else if (write(ep0, NULL, 0) < 0) { /* stalled */ }
		} else if (ev.type == FUNCTIONFS_UNBIND) {
			printf("ffs_sink: received %llu bytes\n", __atomic_load_n(&received, __ATOMIC_RELAXED));
			fflush(stdout);
		}
	}
	return 0;
}
