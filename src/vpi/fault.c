/* vpi/fault: parser of fault specs (see fault.h for the grammar).
 * Table-driven: each kind names the keys it takes. Pure, any thread; the
 * input is outside text, so every length is bounded (fuzz_vpi_fault). */
#include "vpi/fault.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int parse_size(const char *v, uint64_t *out)
{
	char *end = NULL;
	unsigned long long n;
	int shift = 0;

	if (!*v || *v == '-' || isspace((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno || end == v)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end += *end == 'i' && end[1] == 'B' ? 2 : 1;
	if (*end || (shift && n > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)n << shift;
	return 0;
}

static bool phase_ok(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n >= sizeof(((struct vpi_faults *)0)->unplug_phase))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)p[i]) && !isdigit((unsigned char)p[i]) && p[i] != '-' &&
		    p[i] != '_')
			return false;
	return true;
}

/* One "kind[:k=v,...]" spec, NUL-terminated and writable. */
static int parse_one(char *spec, struct vpi_faults *f, char *err, size_t errlen)
{
	char *kind = spec, *args = strchr(spec, ':');
	bool have_phase = false, have_offset = false, have_cmd = false, have_size = false,
	     have_ms = false;
	char phase[32] = "", cmd[64] = "";
	uint64_t offset = 0, size = 0, ms = 0;

	if (args)
		*args++ = '\0';
	while (args && *args) {
		char *next = NULL, *eq, *key, *val;
		/* fail:cmd= takes the rest verbatim (a command may contain ',') */
		if (strcmp(kind, "fail") == 0 && strncmp(args, "cmd=", 4) == 0) {
			next = NULL;
		} else {
			next = strchr(args, ',');
			if (next)
				*next++ = '\0';
		}
		key = args;
		eq = strchr(key, '=');
		if (!eq)
			return set_err(err, errlen, "fault '%s': '%s' is not key=value", kind, key);
		*eq = '\0';
		val = eq + 1;
		if (strcmp(key, "phase") == 0) {
			if (!phase_ok(val))
				return set_err(err, errlen, "fault '%s': bad phase '%s' (lowercase "
					       "name, e.g. rom, recovery, bootloader, gadget, download, "
					       "flash)", kind, val);
			snprintf(phase, sizeof(phase), "%s", val);
			have_phase = true;
		} else if (strcmp(key, "offset") == 0) {
			if (parse_size(val, &offset))
				return set_err(err, errlen, "fault '%s': bad offset '%s' (bytes, "
					       "e.g. 1048576 or 1M)", kind, val);
			have_offset = true;
		} else if (strcmp(key, "cmd") == 0) {
			if (!*val || strlen(val) >= sizeof(cmd))
				return set_err(err, errlen, "fault '%s': cmd '%s' empty or longer "
					       "than 63 characters", kind, val);
			snprintf(cmd, sizeof(cmd), "%s", val);
			have_cmd = true;
		} else if (strcmp(key, "size") == 0) {
			if (parse_size(val, &size) || size == 0)
				return set_err(err, errlen, "fault '%s': bad size '%s' (e.g. 64M)",
					       kind, val);
			have_size = true;
		} else if (strcmp(key, "ms") == 0) {
			if (parse_size(val, &ms) || ms > 600000)
				return set_err(err, errlen, "fault '%s': bad ms '%s' (0..600000)",
					       kind, val);
			have_ms = true;
		} else {
			return set_err(err, errlen, "fault '%s': unknown key '%s'", kind, key);
		}
		args = next;
	}
#define ONLY(ok) do { \
		if (!(ok)) \
			return set_err(err, errlen, "fault '%s': wrong keys (see '%s')", kind, \
				       "unplug:phase=P[,offset=N] stall:phase=P fail:cmd=C " \
				       "storage:size=N bitflip:offset=N slow-enum:ms=N dup-desc"); \
	} while (0)
	if (strcmp(kind, "unplug") == 0) {
		ONLY(have_phase && !have_cmd && !have_size && !have_ms);
		snprintf(f->unplug_phase, sizeof(f->unplug_phase), "%s", phase);
		f->unplug_offset = offset;
	} else if (strcmp(kind, "stall") == 0) {
		ONLY(have_phase && !have_offset && !have_cmd && !have_size && !have_ms);
		snprintf(f->stall_phase, sizeof(f->stall_phase), "%s", phase);
	} else if (strcmp(kind, "fail") == 0) {
		ONLY(have_cmd && !have_phase && !have_offset && !have_size && !have_ms);
		snprintf(f->fail_command, sizeof(f->fail_command), "%s", cmd);
	} else if (strcmp(kind, "storage") == 0) {
		ONLY(have_size && !have_phase && !have_offset && !have_cmd && !have_ms);
		f->storage_bytes = size;
	} else if (strcmp(kind, "bitflip") == 0) {
		ONLY(have_offset && !have_phase && !have_cmd && !have_size && !have_ms);
		if (offset > (uint64_t)INT64_MAX)
			return set_err(err, errlen, "fault '%s': offset too large", kind);
		f->bitflip_offset = (int64_t)offset;
	} else if (strcmp(kind, "slow-enum") == 0) {
		ONLY(have_ms && !have_phase && !have_offset && !have_cmd && !have_size);
		f->slow_enum_ms = (unsigned)ms;
	} else if (strcmp(kind, "dup-desc") == 0) {
		ONLY(!have_ms && !have_phase && !have_offset && !have_cmd && !have_size);
		f->duplicate_descriptor = true;
	} else {
		return set_err(err, errlen, "unknown fault '%s' (unplug, stall, fail, storage, "
			       "bitflip, slow-enum, dup-desc)", kind);
	}
#undef ONLY
	return 0;
}

int vpi_fault_parse(const char *spec, struct vpi_faults *f, char *err, size_t errlen)
{
	struct vpi_faults tmp = *f;
	char *copy, *p, *next;
	int r = 0;

	if (err && errlen)
		err[0] = '\0';
	if (!spec || !*spec)
		return set_err(err, errlen, "empty fault spec");
	copy = strdup(spec);
	if (!copy)
		return -ENOMEM;
	for (p = copy; p; p = next) {
		next = strchr(p, ';');
		if (next)
			*next++ = '\0';
		if (!*p) {
			r = set_err(err, errlen, "empty fault spec in '%s'", spec);
			break;
		}
		r = parse_one(p, &tmp, err, errlen);
		if (r)
			break;
	}
	free(copy);
	if (r == 0)
		*f = tmp;
	return r;
}
