/* What a run tells people and machines: messages on stderr, a progress bar on
 * a terminal (one plain line every few seconds elsewhere, as cluster logs
 * want), and with --log-json one JSON object per line per event. */
#ifndef SS_PROGRESS_H
#define SS_PROGRESS_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

typedef struct reporter reporter;

/* tty: draw a bar (else plain lines at most every interval seconds).
 * json: events go here (may be NULL). quiet: only warnings and errors. */
reporter *reporter_new(int tty, double interval, FILE *json, int quiet);
void reporter_free(reporter *r);
/* A message line on stderr (not when quiet) and a JSON event "message". */
void report_info(reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_warn(reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON event (steals fields; adds "event" and "time"). */
void report_event(reporter *r, const char *event, json_t *fields);

void progress_begin(reporter *r, const char *label, const char *what, int64_t total);
void progress_update(reporter *r, int64_t done);
void progress_end(reporter *r);

#endif
