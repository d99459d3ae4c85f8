/* headless: event printing for front ends without a screen.
 * Front-end thread only (it pops the queue). */
#include <stdlib.h>

#include "station/headless.h"

size_t headless_drain(struct event_queue *q, const struct headless_opts *o, uint64_t start_ns)
{
	struct event evs[64];
	size_t n, printed = 0;

	while ((n = event_pop(q, evs, 64)) > 0) {
		for (size_t i = 0; i < n; i++) {
			const struct event *ev = &evs[i];

			if (o->json) {
				char *js = event_to_json(ev);

				if (js) {
					fprintf(o->out, "%s\n", js);
					printed++;
				}
				free(js);
			} else if (!(o->quiet_progress && ev->type == EVENT_PROGRESS) &&
				   !(o->quiet_logs && ev->type == EVENT_LOG)) {
				char line[1024];

				if (event_format_line(ev, start_ns, line, sizeof(line)) > 0) {
					fprintf(o->out, "%s\n", line);
					printed++;
				}
			}
			event_clear(&evs[i]);
		}
		fflush(o->out);
	}
	return printed;
}
