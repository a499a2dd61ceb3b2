#include "progress.h"
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct reporter {
    int tty, quiet;
    double interval;
    FILE *json;
    /* current progress */
    char label[160], what[64];
    int64_t total, done;
    double t0, last_draw, last_json;
    int active, drawn;
};

reporter *reporter_new(int tty, double interval, FILE *json, int quiet)
{
    reporter *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->tty = tty;
    r->interval = interval > 0 ? interval : 10;
    r->json = json;
    r->quiet = quiet;
    return r;
}

void reporter_free(reporter *r) { free(r); }

static void clear_bar(reporter *r)
{
    if (r->tty && r->drawn) {
        fputs("\r\033[K", stderr);
        r->drawn = 0;
    }
}

void report_event(reporter *r, const char *event, json_t *fields)
{
    if (!r || !r->json) {
        json_decref(fields);
        return;
    }
    if (!fields) fields = json_object();
    char t[32];
    ss_utc_iso8601(t);
    json_object_set_new(fields, "event", json_string(event));
    json_object_set_new(fields, "time", json_string(t));
    char *s = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    if (s) {
        fputs(s, r->json);
        fputc('\n', r->json);
        fflush(r->json);
        free(s);
    }
    json_decref(fields);
}

static void vreport(reporter *r, const char *level, int always, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (always || !r->quiet) {
        clear_bar(r);
        fprintf(stderr, "%s%s\n", level, msg);
    }
    report_event(r, "message", json_pack("{s:s,s:s}", "level", level[0] ? "warning" : "info", "text", msg));
}

void report_info(reporter *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(r, "", 0, fmt, ap);
    va_end(ap);
}

void report_warn(reporter *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(r, "warning: ", 1, fmt, ap);
    va_end(ap);
}

void progress_begin(reporter *r, const char *label, const char *what, int64_t total)
{
    snprintf(r->label, sizeof r->label, "%s", label);
    snprintf(r->what, sizeof r->what, "%s", what ? what : "");
    r->total = total;
    r->done = 0;
    r->t0 = r->last_draw = r->last_json = ss_now();
    r->active = 1;
}

/* "17.09 steps/s", "1.20k planes/s" */
static void rate_text(double rate, const char *unit, char *out, size_t n)
{
    const char *prefix = "";
    if (rate >= 1e9) rate /= 1e9, prefix = "G";
    else if (rate >= 1e6) rate /= 1e6, prefix = "M";
    else if (rate >= 1e3) rate /= 1e3, prefix = "k";
    snprintf(out, n, "%.2f%s %s/s", rate, prefix, unit[0] ? unit : "items");
}

void progress_update(reporter *r, int64_t done)
{
    if (!r || !r->active) return;
    r->done = done;
    double now = ss_now();
    double el = now - r->t0;
    double frac = r->total > 0 ? (double)done / (double)r->total : 0;
    if (frac > 1) frac = 1;
    double rate = el > 0 ? (double)done / el : 0;
    double eta = rate > 0 && r->total > done ? (double)(r->total - done) / rate : 0;
    char eta_s[32], el_s[32], rate_s[96];
    ss_fmt_duration(eta, eta_s);
    ss_fmt_duration(el, el_s);
    rate_text(rate, r->what, rate_s, sizeof rate_s);
    if (r->json && now - r->last_json >= r->interval) {
        r->last_json = now;
        report_event(r, "progress", json_pack("{s:s,s:I,s:I,s:f,s:s,s:f}", "label", r->label, "done", (json_int_t)done,
                                              "total", (json_int_t)r->total, "rate", rate, "unit", r->what,
                                              "eta_seconds", eta));
    }
    if (r->quiet) return;
    if (r->tty) {
        if (now - r->last_draw < 0.1 && done < r->total) return;
        r->last_draw = now;
        int width = 28, fill = (int)(frac * width);
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r\033[K%s [%s] %3d%% %s %s ETA %s", r->label, bar, (int)(frac * 100), el_s, rate_s,
                eta_s);
        r->drawn = 1;
        fflush(stderr);
    } else if (now - r->last_draw >= r->interval) {
        r->last_draw = now;
        fprintf(stderr, "%s: %d%% (%lld/%lld %s) %s, elapsed %s, ETA %s\n", r->label, (int)(frac * 100),
                (long long)done, (long long)r->total, r->what, rate_s, el_s, eta_s);
    }
}

void progress_end(reporter *r)
{
    if (!r || !r->active) return;
    clear_bar(r);
    r->active = 0;
}
