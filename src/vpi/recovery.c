/* vpi/recovery: the virtual Pi's recovery.bin: EEPROM update and OTP
 * provisioning over the rpiboot file server.
 *
 * Runs on the board's device thread after the ROM accepted a recovery second
 * stage. Order and names follow rpiboot.md §5.3 (config.txt; pieeprom.bin
 * probed twice, pieeprom.sig, pieeprom.bin; flash; OTP; metadata; Done), the
 * switches §6, the metadata keys §4.4, and the refusals of
 * secure-boot-artefacts.md §6.3 (R4, R5, R8, R9, R10). */
#include "vpi/recovery.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vpi/board.h"
#include "vpi/eeprom_dev.h"
#include "vpi/rom.h"

void vpi_recovery_config_parse(const void *text, size_t len, struct vpi_recovery_config *c)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
#define K(x) { #x, offsetof(struct vpi_recovery_config, x) }
		K(program_pubkey), K(revoke_devkey), K(program_jtag_lock), K(program_rpiboot_gpio),
		K(eeprom_write_protect), K(erase_eeprom), K(recovery_reboot), K(set_reboot_order),
		K(set_reboot_arg1), K(recovery_wait), K(recovery_metadata), K(uart_2ndstage),
#undef K
	};
	const char *t = text;
	size_t i = 0;

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
		*(long *)((char *)c + keys[k].off) = -1;
	while (t && i < len) {
		size_t e = i, ks, ke, vs;
		char val[32];

		while (e < len && t[e] != '\n')
			e++;
		ks = i;
		while (ks < e && (t[ks] == ' ' || t[ks] == '\t'))
			ks++;
		ke = ks;
		while (ke < e && t[ke] != '=' && t[ke] != ' ' && t[ke] != '\r')
			ke++;
		vs = ke;
		while (vs < e && (t[vs] == ' ' || t[vs] == '='))
			vs++;
		if (ks < e && t[ks] != '#' && t[ks] != '[' && ke < e) {
			size_t vl = e - vs;
			if (vl >= sizeof(val))
				vl = sizeof(val) - 1;
			memcpy(val, t + vs, vl);
			val[vl] = '\0';
			for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
				if (strlen(keys[k].key) == ke - ks &&
				    memcmp(keys[k].key, t + ks, ke - ks) == 0)
					*(long *)((char *)c + keys[k].off) = strtol(val, NULL, 0);
		}
		i = e + 1;
	}
}

static void hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", in[i]);
}

static void mac_str(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

/* C40-coded FACTORY_UUID (the reverse of rpiboot.md §4.5): 18 digits from the
 * serial, three u32 words, low 16 bits first. */
static void factory_uuid(uint64_t serial, char *out, size_t outlen)
{
	char digits[19];
	uint32_t w[3] = { 0, 0, 0 };

	snprintf(digits, sizeof(digits), "%018" PRIu64, (uint64_t)(serial % 1000000000000000000ull));
	for (int t = 0; t < 6; t++) {
		unsigned a = (unsigned)(digits[3 * t] - '0') + 4;
		unsigned bb = (unsigned)(digits[3 * t + 1] - '0') + 4;
		unsigned c = (unsigned)(digits[3 * t + 2] - '0') + 4;
		uint32_t h = a * 1600u + bb * 40u + c + 1u;
		w[t / 2] |= (t % 2) ? h << 16 : h;
	}
	snprintf(out, outlen, "%08" PRIx32 "_%08" PRIx32 "_%08" PRIx32, w[0], w[1], w[2]);
}

/* Verify bootconf.sig over bootconf.txt with pubkey.bin of @img (R5). */
static int check_config_signature(const uint8_t *img, size_t len, const uint8_t **pubkey,
				  char *why, size_t whylen)
{
	const uint8_t *conf, *sigt, *pk;
	size_t conf_len, sig_len, pk_len;
	struct vpi_sig sig;
	uint8_t h[32];

	if (vpi_ee_file(img, len, "pubkey.bin", &pk, &pk_len) != 0 ||
	    !vpi_pubkey_present(pk, pk_len)) {
		snprintf(why, whylen, "the EEPROM image has no customer public key (pubkey.bin)");
		return -EKEYREJECTED;
	}
	if (vpi_ee_file(img, len, "bootconf.txt", &conf, &conf_len) != 0 ||
	    vpi_ee_file(img, len, "bootconf.sig", &sigt, &sig_len) != 0 ||
	    vpi_sig_parse(sigt, sig_len, &sig, why, whylen) != 0) {
		if (!why[0])
			snprintf(why, whylen, "bootconf.txt or bootconf.sig missing");
		return -EKEYREJECTED;
	}
	vpi_sha256(conf, conf_len, h);
	if (memcmp(h, sig.sha256, 32) != 0 || !sig.has_rsa) {
		snprintf(why, whylen, "bootconf.txt %s", !sig.has_rsa ? "is not signed" : "hash mismatch");
		return -EKEYREJECTED;
	}
	if (vpi_rsa_verify(pk, h, sig.rsa) != 0) {
		snprintf(why, whylen, "RSA verify of bootconf.sig with pubkey.bin failed");
		return -EKEYREJECTED;
	}
	*pubkey = pk;
	return 0;
}

/* Check pieeprom.bin against pieeprom.sig as recovery.bin does (R9, R10, R4,
 * R5 on a fused board). 0, or -EBADMSG for error code 24. */
static int check_update(struct vpi_board *b, const uint8_t *img, size_t len, const uint8_t *sigt,
			size_t sig_len, char *why, size_t whylen)
{
	uint32_t part = vpi_board_model(b)->chip == VPI_CHIP_2712 ? 2097152u : 524288u;
	struct vpi_ee_section *secs = NULL;
	size_t nsecs = 0;
	struct vpi_sig sig;
	uint8_t h[32], otp[32];
	const uint8_t *pk = NULL;
	size_t pk_len = 0;
	bool fused = vpi_otp_key_hash_programmed(b);

	if (vpi_sig_parse(sigt, sig_len, &sig, why, whylen) != 0)
		return -EBADMSG;
	vpi_sha256(img, len, h);
	if (memcmp(h, sig.sha256, 32) != 0) {
		snprintf(why, whylen, "pieeprom.bin hash mismatch with pieeprom.sig");
		return -EBADMSG;
	}
	if (len != part || vpi_ee_parse(img, len, &secs, &nsecs) != 0 || nsecs == 0) {
		free(secs);
		snprintf(why, whylen, "pieeprom.bin is not a %" PRIu32 "-byte EEPROM image for this "
			 "chip", part);
		return -EBADMSG;
	}
	free(secs);
	if (vpi_ee_file(img, len, "pubkey.bin", &pk, &pk_len) != 0 || !vpi_pubkey_present(pk, pk_len))
		pk = NULL;
	if (fused) {
		vpi_otp_key_hash(b, otp);
		if (!pk) {
			snprintf(why, whylen, "new EEPROM image has no pubkey.bin but the key hash "
				 "is burned");
			return -EBADMSG;
		}
		vpi_sha256(pk, VPI_PUBKEY_BIN_LEN, h);
		if (memcmp(h, otp, 32) != 0) {
			snprintf(why, whylen, "EEPROM RSA key mismatch: pubkey.bin does not hash to "
				 "the OTP customer key hash");
			return -EBADMSG;
		}
		if (check_config_signature(img, len, &pk, why, whylen) != 0)
			return -EBADMSG;
		if (!sig.has_rsa && VPI_GUESS_FUSED_REQUIRES_SIGNED_PIEEPROM) {
			snprintf(why, whylen, "pieeprom.sig has no rsa2048 signature but the board "
				 "is secured");
			return -EBADMSG;
		}
	}
	if (sig.has_rsa) {
		if (!pk) {
			snprintf(why, whylen, "pieeprom.sig is signed but the new image carries no "
				 "public key to check it with");
			return -EBADMSG;
		}
		vpi_sha256(img, len, h);
		if (vpi_rsa_verify(pk, h, sig.rsa) != 0) {
			snprintf(why, whylen, "Bad signature pieeprom.sig (RSA verify failed)");
			return -EBADMSG;
		}
	}
	return 0;
}

/* program_pubkey=1 (+ revoke on 2711). @img is the image now in the EEPROM. */
static int program_pubkey(struct vpi_board *b, const uint8_t *img, size_t len,
			  const struct vpi_recovery_config *c)
{
	const struct vpi_model_info *m = vpi_board_model(b);
	const uint8_t *pk = NULL;
	char why[160] = "";
	uint8_t h[32];
	char hx[65];
	int r;

	vpi_log(b, "secure_boot_provision program_pubkey 1");
	if (check_config_signature(img, len, &pk, why, sizeof(why)) != 0) {
		vpi_log(b, "secure boot provision failed: %s", why);
		return -EKEYREJECTED;
	}
	vpi_log(b, "RSA verify of bootconf.txt: rsa-verify pass");
	if (VPI_GUESS_PI4_PUBKEY_NEEDS_GPIO && m->chip == VPI_CHIP_2711 &&
	    strncmp(m->name, "cm", 2) != 0 && vpi_otp_rpiboot_gpio(b) == 0 &&
	    c->program_rpiboot_gpio <= 0) {
		vpi_log(b, "Failed to set RPIBOOT OTP gpio0 c800 -> 0 (set program_rpiboot_gpio)");
		return -EINVAL;
	}
	vpi_sha256(pk, VPI_PUBKEY_BIN_LEN, h);
	hex(h, 32, hx);
	vpi_log(b, "Public key hash %s", hx);
	if (m->chip == VPI_CHIP_2711 && c->program_rpiboot_gpio > 0 && strncmp(m->name, "cm", 2) != 0) {
		r = vpi_otp_program_rpiboot_gpio(b, (unsigned)c->program_rpiboot_gpio);
		if (r && r != -EPERM)
			return r;
	}
	r = vpi_otp_program_key_hash(b, h);
	if (r)
		return r;
	if (m->chip == VPI_CHIP_2711) {
		vpi_log(b, "Revoke development key");
		r = vpi_otp_program_revoke_devkey(b);
	}
	return r;
}

struct meta {
	const char *ee_update, *ee_erase, *sbp;
	char ee_hash[65];
};

static int push_metadata(struct vpi_fw *fw, const struct meta *mt, char *last, size_t lastlen)
{
	struct vpi_board *b = fw->board;
	const struct vpi_model_info *m = vpi_board_model(b);
	uint8_t eth[6], wifi[6], bt[6], kh[32];
	char v[80], khx[65];
	uint32_t boot_rom;
	int r = 0;

#define META(k, val) do { \
		if ((r = vpi_s2_meta(fw, (k), (val))) != 0) \
			return r; \
		snprintf(last, lastlen, "*%s*%s", (k), (val)); \
	} while (0)

	vpi_board_macs(b, eth, wifi, bt);
	snprintf(v, sizeof(v), "%" PRIx32, vpi_board_rom_serial(b));
	META("USER_SERIAL_NUM", v);
	mac_str(eth, v);
	META("MAC_ADDR", v);
	if (mt->ee_update) {
		META("EEPROM_UPDATE", mt->ee_update);
		META("EEPROM_HASH", mt->ee_hash);
	}
	if (mt->ee_erase)
		META("EEPROM_ERASE", mt->ee_erase);
	if (mt->sbp)
		META("SECURE_BOOT_PROVISION", mt->sbp);
	vpi_otp_key_hash(b, kh);
	hex(kh, 32, khx);
	META("CUSTOMER_KEY_HASH", khx);
	if (m->chip == VPI_CHIP_2711)
		boot_rom = vpi_otp_key_hash_programmed(b) ? 0x0000c8b0u : 0x000048b0u;
	else
		boot_rom = 0x0000000au;
	snprintf(v, sizeof(v), "%08" PRIx32, boot_rom);
	META("BOOT_ROM", v);
	META("BOARD_ATTR", "00000000");
	snprintf(v, sizeof(v), "%" PRIx32, m->revision_code);
	META("USER_BOARDREV", v);
	META("JTAG_LOCKED", vpi_otp_jtag_locked(b) ? "1" : "0");
	if (m->chip == VPI_CHIP_2711) {
		unsigned g = vpi_otp_rpiboot_gpio(b);
		snprintf(v, sizeof(v), "%08" PRIx32,
			 VPI_GUESS_ADVANCED_BOOT_BASE | (g ? (uint32_t)(0x80u | g) << 16 : 0));
		META("ADVANCED_BOOT", v);
	}
	if (m->chip == VPI_CHIP_2712) {
		META("SIGNATURE_MODE", "0");
		mac_str(wifi, v);
		META("MAC_WIFI_ADDR", v);
		mac_str(bt, v);
		META("MAC_BT_ADDR", v);
		factory_uuid(vpi_board_serial64(b), v, sizeof(v));
		META("FACTORY_UUID", v);
	}
#undef META
	return 0;
}

static void eeprom_hash(struct vpi_board *b, char out[65])
{
	uint8_t *img = NULL, h[32];
	size_t len = 0;

	out[0] = '\0';
	if (vpi_eeprom_read(b, &img, &len) == 0) {
		vpi_sha256(img, len, h);
		hex(h, 32, out);
	}
	free(img);
}

int vpi_recovery_run(struct vpi_fw *fw)
{
	struct vpi_board *b = fw->board;
	const struct vpi_model_info *m = vpi_board_model(b);
	struct vpi_recovery_config c;
	struct meta mt = { NULL, NULL, NULL, "" };
	uint8_t *conf = NULL, *img = NULL, *sigt = NULL, *cur = NULL;
	size_t conf_len = 0, img_len = 0, sig_len = 0, cur_len = 0;
	const char *img_name = NULL;
	char last[300] = "", why[200] = "";
	bool fatal24 = false, ee_ok = true;
	uint32_t size = 0;
	int r;

	r = vpi_s2_enumerate(fw);
	if (r == 0)
		r = vpi_board_phase_enter(b, "recovery");
	if (r)
		goto out;
	r = vpi_s2_get(fw, "config.txt", &conf, &conf_len);
	if (r)
		goto out;
	vpi_recovery_config_parse(conf, conf_len, &c);
	snprintf(last, sizeof(last), "config.txt");

	if (c.erase_eeprom == 1) {
		uint32_t part = m->chip == VPI_CHIP_2712 ? 2097152u : 524288u;
		uint8_t *ff = malloc(part);
		if (!ff) {
			r = -ENOMEM;
			goto out;
		}
		memset(ff, 0xff, part);
		mt.ee_erase = vpi_eeprom_write(b, ff, part) == 0 ? "success" : "fail";
		free(ff);
		vpi_log(b, "EEPROM erase: %s", mt.ee_erase);
		ee_ok = false;
	} else {
		r = vpi_s2_size(fw, "pieeprom.bin", &size);
		if (r)
			goto out;
		if (size) {
			img_name = "pieeprom.bin";
		} else {
			r = vpi_s2_size(fw, "pieeprom.upd", &size);
			if (r)
				goto out;
			if (size)
				img_name = "pieeprom.upd";
		}
		if (img_name) {
			if ((r = vpi_s2_size(fw, img_name, &size)) != 0 ||
			    (r = vpi_s2_get(fw, "pieeprom.sig", &sigt, &sig_len)) != 0 ||
			    (r = vpi_s2_get(fw, img_name, &img, &img_len)) != 0)
				goto out;
			snprintf(last, sizeof(last), "%s", img_name);
			if (!sigt || sig_len == 0) {
				snprintf(why, sizeof(why), "pieeprom.sig missing or empty");
				fatal24 = true;
			} else if (check_update(b, img, img_len, sigt, sig_len, why, sizeof(why)) != 0) {
				fatal24 = true;
			}
			if (fatal24) {
				vpi_log(b, "Bad signature pieeprom.sig: %s; BOOT ERROR code 24 "
					"(File signature or hash mismatch)", why);
				mt.ee_update = "fail";
				ee_ok = false;
			} else {
				r = vpi_eeprom_write(b, img, img_len);
				mt.ee_update = r == 0 ? "success" : "fail";
				ee_ok = r == 0;
				vpi_log(b, "BOOT-EEPROM: %s", r == 0 ? "UPDATED" :
					r == -EROFS ? "write refused (write protected)" : "write failed");
				r = 0;
			}
			eeprom_hash(b, mt.ee_hash);
		}
	}

	if (!fatal24) {
		if (c.program_pubkey == 1) {
			if (!ee_ok) {
				vpi_log(b, "secure boot provision skipped: the EEPROM was not updated");
				mt.sbp = "fail";
			} else if (vpi_eeprom_read(b, &cur, &cur_len) != 0 ||
				   program_pubkey(b, cur, cur_len, &c) != 0) {
				mt.sbp = "fail";
			} else {
				mt.sbp = "success";
			}
		}
		if (c.program_jtag_lock == 1) {
			if (vpi_otp_key_hash_programmed(b))
				vpi_otp_program_jtag_lock(b);
			else
				vpi_log(b, "program_jtag_lock ignored: no customer key hash");
		}
		if (m->chip == VPI_CHIP_2711 && c.program_rpiboot_gpio > 0 && c.program_pubkey != 1 &&
		    strncmp(m->name, "cm", 2) != 0)
			vpi_otp_program_rpiboot_gpio(b, (unsigned)c.program_rpiboot_gpio);
		if (m->chip == VPI_CHIP_2711 && c.revoke_devkey == 1)
			vpi_otp_program_revoke_devkey(b);
		if (c.eeprom_write_protect == 1 || c.eeprom_write_protect == 0)
			vpi_eeprom_set_write_protect(b, c.eeprom_write_protect == 1);
	}

	if (c.recovery_metadata != 0) {
		r = push_metadata(fw, &mt, last, sizeof(last));
		if (r)
			goto out;
	}
	r = vpi_s2_done(fw, last);
	if (r)
		goto out;
	if (fatal24 || c.recovery_wait == 1 || c.recovery_reboot != 1) {
		r = VPI_NEXT_HALT;
	} else {
		if (m->chip == VPI_CHIP_2712 && c.set_reboot_order == 0x3)
			fw->rpiboot_next = true;
		r = VPI_NEXT_REBOOT;
	}
out:
	if (r < 0 && r != -ENODEV) {
		vpi_log(b, "recovery: session with the host failed (%s); halting", strerror(-r));
		r = VPI_NEXT_HALT;
	}
	free(conf);
	free(img);
	free(sigt);
	free(cur);
	return r;
}
