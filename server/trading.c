/*
 * The market's objects as JSON: see trading.h.
 */
#include "server/trading.h"

#include <string.h>

#include "matching/matching.h"
#include "server/market.h"
#include "server/money.h"
#include "server/util.h"

const char *const trade_status_names[] = { "open", "filled", "cancelled", "expired", NULL };
const char *const account_kind_names[] = { "available", "held",       "escrow",
                                           "external",  "commission", NULL };

void json_set_time(json_t *obj, const char *key, int64_t t)
{
    char buf[RFC3339_MAX];
    json_object_set_new(obj, key, t ? json_string(format_rfc3339(t * 1000000, buf)) : json_null());
}

static json_t *terms_copy(const json_t *terms)
{
    /* Shallow: the nested parts (arrays, constraints) are shared, never changed after the terms
     * were built, and jansson counts references atomically. */
    json_t *o = terms ? json_copy((json_t *)terms) : json_object();
    return json_is_object(o) ? o : (json_decref(o), json_object());
}

static void set_reason(json_t *o, const char *reason)
{
    json_object_set_new(o, "cancel_reason", reason[0] ? json_string(reason) : json_null());
}

json_t *order_json(const struct order_view *v)
{
    json_t *o = terms_copy(v->terms);
    char id[MARKET_ID_MAX];
    market_id_format(id, "ord_", v->id);
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "buyer", json_string(v->buyer));
    json_object_set_new(o, "client_order_id", json_string(v->client_order_id));
    json_object_set_new(o, "status", json_string(trade_status_names[v->status]));
    json_object_set_new(o, "remaining", json_integer(v->remaining));
    json_object_set_new(o, "filled_devices", json_integer(v->filled_devices));
    money_json_set(o, "hold", v->hold);
    money_json_set(o, "hold_left", v->hold_left);
    json_object_set_new(o, "agreements",
                        v->agreements ? json_copy((json_t *)v->agreements) : json_array());
    set_reason(o, v->cancel_reason);
    json_set_time(o, "created_at", v->created_at);
    json_object_set_new(o, "ledger_seq", json_integer((json_int_t)v->ledger_seq));
    return o;
}

json_t *listing_json(const struct listing_view *v)
{
    json_t *o = terms_copy(v->terms);
    char id[MARKET_ID_MAX];
    market_id_format(id, "lst_", v->id);
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "provider", json_string(v->provider));
    json_object_set_new(o, "status", json_string(trade_status_names[v->status]));
    json_object_set_new(o, "devices", json_integer(v->devices));
    json_object_set_new(o, "remaining_devices", json_integer(v->remaining));
    set_reason(o, v->cancel_reason);
    json_set_time(o, "created_at", v->created_at);
    json_object_set_new(o, "ledger_seq", json_integer((json_int_t)v->ledger_seq));
    return o;
}

json_t *account_json(const char *owner, const int64_t balance[ACC_NKINDS])
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(owner));
    money_json_set(o, "available", balance[ACC_AVAILABLE]);
    money_json_set(o, "held", balance[ACC_HELD]);
    money_json_set(o, "escrow", balance[ACC_ESCROW]);
    return o;
}

bool trading_hold(int64_t limit, bool devices, int64_t quantity, int64_t per, int64_t hours,
                  int64_t bps, int64_t *hold)
{
    int64_t tflops, value, fee;
    bool ok = devices ? money_mul(quantity, per, &tflops) : money_add(quantity, per - 1, &tflops);
    return ok && money_value(limit, tflops, 1, hours, &value) &&
           money_commission(value, bps, &fee) && money_add(value, fee, hold);
}

const char *trading_cancel_reason(unsigned reason)
{
    switch (reason) {
    case MX_R_USER: return "user";
    case MX_R_IOC: return "ioc";
    case MX_R_FOK: return "fok";
    case MX_R_STP: return "self_trade";
    case MX_R_EXPIRED: return "expired";
    default: return "engine";
    }
}

int account_kind_index(const char *name)
{
    for (int k = 0; k < ACC_NKINDS; k++)
        if (strcmp(account_kind_names[k], name) == 0)
            return k;
    return -1;
}
