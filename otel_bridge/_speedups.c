/* The hot path of `otel_bridge.timer()` in C: entering and leaving a timer's block in a request
 * whose timers are built at the end (otel_bridge._timer_spans), the common case.
 *
 * `TimerCore` is the base of `otel_bridge.timers.timer`. Its `__enter__` and `__exit__` do what
 * `otel_bridge.timers._PyTimerCore`'s do, step for step, where every condition of the fast
 * path holds (read-only checks first); anywhere else they call that Python code, which stays
 * the one definition of the behaviour. `setup()` hands this module, once, the Python objects it
 * works with. Without a compiler, or with OTEL_BRIDGE_PURE_PYTHON=1, the Python base is used.
 */

/* What otel_bridge._compiled expects: raised whenever setup() or the behaviour changes, so that
 * a module built from an older source is left unused (the Python code runs). */
#define SPEEDUPS_VERSION 11

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* What setup() gave: strong references, kept for the life of the process. */
static struct {
    int ready;
    PyObject *current;       /* ContextVar: the request's builder */
    PyObject *context_var;   /* ContextVar: OpenTelemetry's current Context, or NULL */
    PyObject *span_key;      /* the key of the current span in a Context */
    PyObject *context_type;  /* opentelemetry.context.Context */
    PyTypeObject *server_span;
    PyTypeObject *timer_span;
    PyTypeObject *span_context;
    PyObject *flags;         /* tuple: TraceFlags(0..255) */
    long random_trace_id;
    PyObject *getrandbits;
    PyObject *wall_ns;
    PyObject *internal;      /* SpanKind.INTERNAL */
    PyObject *slots;         /* tuple of TimerSpan's member descriptors, in SLOT_ order */
    PyObject *enter_slow;    /* _PyTimerCore.__enter__ */
    PyObject *exit_slow;     /* _PyTimerCore.__exit__ */
    PyObject *finish_timer;
    PyObject *ended_early;
    PyObject *otel_detach;
    PyObject *init_slow;     /* _PyTimerCore.__init__ */
    PyObject *join_record;   /* _timer_spans.join_record */
} S;

enum {
    SLOT_CONTEXT, SLOT_BUILDER, SLOT_KIND, SLOT_NAME, SLOT_PARENT, SLOT_START_ATTRIBUTES,
    SLOT_EXPORTERS, SLOT_START_TIME, SLOT_END_TIME, SLOT_CHANGES, SLOT_CLOSED, SLOT_ERROR,
    SLOT_CPU, SLOT_CPU_USER, SLOT_CPU_SYSTEM, SLOT_COUNT
};

static PyObject *str_span, *str_closed, *str_bridge, *str_timer_plan, *str_max_attributes,
    *str_fast, *str_exporters, *str_context,
    *str_open_spans, *str_spans, *str_max_timers, *str_qualname, *str_name, *str_space,
    *str_timer, *int_64, *int_zero;

typedef struct {
    PyObject_HEAD
    PyObject *attributes;
    PyObject *builder;
    PyObject *kind;
    PyObject *name;
    PyObject *span;
    PyObject *token;
    int fast; /* entered by fast_start: its __exit__ may take the fast path */
} TimerCore;

static int
set_slot(PyObject *span, int slot, PyObject *value)
{
    PyObject *descr = PyTuple_GET_ITEM(S.slots, slot);
    return Py_TYPE(descr)->tp_descr_set(descr, span, value);
}

/* A TimerSpan's slot, read through its descriptor in `slots` (a new reference). */
static PyObject *
slot_of(PyObject *slots, PyObject *span, int slot)
{
    PyObject *descr = PyTuple_GET_ITEM(slots, slot);
    return Py_TYPE(descr)->tp_descr_get(descr, span, (PyObject *)Py_TYPE(span));
}

#define get_slot(span, slot) slot_of(S.slots, (span), (slot))

/* tuple.__new__(type, items) for a tuple subclass, as CPython builds one: its memory, then
 * the items (before 3.14, whose tuples cache their hash, which this would leave unset). */
static PyObject *
new_tuple_of(PyTypeObject *type, PyObject *const *items, Py_ssize_t count)
{
#if PY_VERSION_HEX < 0x030E0000
    PyObject *made = type->tp_alloc(type, count);
    if (made != NULL)
        for (Py_ssize_t i = 0; i < count; i++)
            PyTuple_SET_ITEM(made, i, Py_NewRef(items[i]));
    return made;
#else
    PyObject *plain = PyTuple_New(count);
    if (plain == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++)
        PyTuple_SET_ITEM(plain, i, Py_NewRef(items[i]));
    PyObject *args = PyTuple_Pack(1, plain);
    Py_DECREF(plain);
    if (args == NULL)
        return NULL;
    PyObject *made = PyTuple_Type.tp_new(type, args, NULL);
    Py_DECREF(args);
    return made;
#endif
}

/* 1: `attr` of `obj` is `expected` (identity); 0: it is not; -1: error. */
static int
attr_is(PyObject *obj, PyObject *attr, PyObject *expected)
{
    PyObject *value = PyObject_GetAttr(obj, attr);
    if (value == NULL)
        return -1;
    int same = value == expected;
    Py_DECREF(value);
    return same;
}

/* The fast path of start_timer() and attach_span(): 1 done, 0 not applicable, -1 error. */
static int
fast_start(TimerCore *self, PyObject *builder)
{
    int result = 0, check;
    PyObject *server = NULL, *bridge = NULL, *timing = NULL, *limit = NULL, *exporters = NULL;
    PyObject *values = NULL, *parent = NULL, *span_id = NULL;
    PyObject *context = NULL, *span = NULL, *start = NULL, *opened = NULL, *fresh = NULL;
    PyObject *token = NULL, *current = NULL;

    if (S.context_var == NULL || self->attributes == NULL || self->name == NULL)
        return 0;
    server = PyObject_GetAttr(builder, str_span);
    if (server == NULL)
        goto error;
    if (Py_TYPE(server) != S.server_span)
        goto done;
    if ((check = attr_is(builder, str_closed, Py_False)) <= 0)
        goto check_failed;
    if ((bridge = PyObject_GetAttr(builder, str_bridge)) == NULL
        || (timing = PyObject_GetAttr(bridge, str_timer_plan)) == NULL)
        goto error;
    if (timing == Py_None)
        goto done;
    /* The default sampler and ids, no CPU measured, the C core allowed (TimerPlan.fast). */
    if ((check = attr_is(timing, str_fast, Py_True)) <= 0)
        goto check_failed;
    if ((limit = PyObject_GetAttr(timing, str_max_attributes)) == NULL)
        goto error;
    Py_ssize_t count = PyObject_Length(self->attributes);
    if (count < 0)
        goto error;
    int overflow = 0;
    long long max_attributes = PyLong_Check(limit) ? PyLong_AsLongLongAndOverflow(limit, &overflow)
                                                   : -1;
    if (max_attributes == -1 && PyErr_Occurred())
        goto error;
    if (!PyLong_Check(limit) || overflow < 0 || (!overflow && count >= max_attributes))
        goto done; /* (the Python code decides) */
    if ((exporters = PyObject_GetAttr(server, str_exporters)) == NULL
        || (opened = PyObject_GetAttr(builder, str_open_spans)) == NULL)
        goto error;
    if (opened != Py_None && !PyDict_CheckExact(opened))
        goto done; /* (the Python code decides) */

    /* The parent: the current span, when it is one of ours. */
    if (PyContextVar_Get(S.context_var, NULL, &values) < 0)
        goto error;
    if (values == NULL || !PyDict_Check(values))
        goto done;
    current = Py_XNewRef(PyDict_GetItemWithError(values, S.span_key));
    if (current == NULL) {
        if (PyErr_Occurred())
            goto error;
        goto done;
    }
    if (Py_TYPE(current) != S.timer_span && Py_TYPE(current) != S.server_span)
        goto done;
    if ((parent = PyObject_GetAttr(current, str_context)) == NULL)
        goto error;
    if (!PyTuple_Check(parent) || PyTuple_GET_SIZE(parent) != 6
        || PyTuple_GET_ITEM(parent, 5) != Py_True)
        goto done;
    PyObject *trace_id = PyTuple_GET_ITEM(parent, 0);
    long parent_flags = PyLong_AsLong(PyTuple_GET_ITEM(parent, 3));
    if (parent_flags == -1 && PyErr_Occurred())
        goto error;
    /* ParentBased(ALWAYS_ON) with a local parent: its decision, its trace state. */
    long flags = parent_flags & 1;
    if (parent_flags & S.random_trace_id)
        flags |= S.random_trace_id;
    if (flags < 0 || flags >= PyTuple_GET_SIZE(S.flags))
        goto done;

    /* A fresh span id, as RandomIdGenerator.generate_span_id draws it. */
    for (;;) {
        span_id = PyObject_CallOneArg(S.getrandbits, int_64);
        if (span_id == NULL)
            goto error;
        if ((check = PyObject_IsTrue(span_id)) < 0)
            goto error;
        if (check)
            break;
        Py_CLEAR(span_id);
    }
    /* tuple.__new__(SpanContext, fields), as CPython builds a tuple subclass's instance. */
    PyObject *fields[6] = {trace_id, span_id, Py_False, PyTuple_GET_ITEM(S.flags, flags),
                           PyTuple_GET_ITEM(parent, 4), Py_True};
    context = new_tuple_of(S.span_context, fields, 6);
    if (context == NULL)
        goto error;
    /* Ints, bools, flags and a trace state, none of which can lead back to it: the garbage
     * collector need not walk it (it stops walking such plain tuples itself; this subclass's
     * instance dict stays empty, as nothing sets attributes on a SpanContext). */
    PyObject_GC_UnTrack(context);
    if ((start = PyObject_CallNoArgs(S.wall_ns)) == NULL)
        goto error;

    /* The TimerSpan, its slots set as TimerSpan.__init__ sets them. */
    span = S.timer_span->tp_alloc(S.timer_span, 0);
    if (span == NULL)
        goto error;
    /* self._kind or SpanKind.INTERNAL */
    PyObject *kind = S.internal;
    if (self->kind != NULL) {
        int given = PyObject_IsTrue(self->kind);
        if (given < 0)
            goto error;
        if (given)
            kind = self->kind;
    }
    if (set_slot(span, SLOT_CONTEXT, context) < 0
        || set_slot(span, SLOT_BUILDER, builder) < 0
        || set_slot(span, SLOT_KIND, kind) < 0
        || set_slot(span, SLOT_NAME, self->name) < 0
        || set_slot(span, SLOT_PARENT, parent) < 0
        || set_slot(span, SLOT_START_ATTRIBUTES, self->attributes) < 0
        || set_slot(span, SLOT_EXPORTERS, exporters) < 0
        || set_slot(span, SLOT_START_TIME, start) < 0
        || set_slot(span, SLOT_END_TIME, Py_None) < 0
        || set_slot(span, SLOT_CHANGES, Py_None) < 0
        || set_slot(span, SLOT_CLOSED, Py_False) < 0
        || set_slot(span, SLOT_ERROR, Py_None) < 0
        || set_slot(span, SLOT_CPU, Py_None) < 0
        || set_slot(span, SLOT_CPU_USER, int_zero) < 0
        || set_slot(span, SLOT_CPU_SYSTEM, int_zero) < 0)
        goto error;

    /* Named in a `timeout` event while it runs. */
    if (opened == Py_None) {
        Py_DECREF(opened);
        if ((opened = PyDict_New()) == NULL
            || PyObject_SetAttr(builder, str_open_spans, opened) < 0)
            goto error;
    }
    if (PyDict_SetItem(opened, span_id, span) < 0)
        goto error;

    /* attach_span(): the same Context on the same ContextVar as the API's attach(). */
    if ((fresh = PyObject_CallOneArg(S.context_type, values)) == NULL)
        goto error;
    if (PyDict_SetItem(fresh, S.span_key, span) < 0)
        goto error;
    if ((token = PyContextVar_Set(S.context_var, fresh)) == NULL)
        goto error;

    Py_XSETREF(self->span, Py_NewRef(span));
    Py_XSETREF(self->builder, Py_NewRef(builder));
    Py_XSETREF(self->token, token);
    token = NULL;
    self->fast = 1;
    result = 1;
    goto done;

check_failed:
    if (check < 0)
        goto error;
    goto done;
error:
    result = -1;
done:
    Py_XDECREF(server);
    Py_XDECREF(bridge);
    Py_XDECREF(timing);
    Py_XDECREF(limit);
    Py_XDECREF(exporters);
    Py_XDECREF(values);
    Py_XDECREF(parent);
    Py_XDECREF(span_id);
    Py_XDECREF(context);
    Py_XDECREF(span);
    Py_XDECREF(start);
    Py_XDECREF(opened);
    Py_XDECREF(fresh);
    Py_XDECREF(token);
    Py_XDECREF(current);
    return result;
}

/* The fast path of finish_timer(): 1 done, 0 not applicable (the Python one runs), -1 error.
 * As finish_timer: the span is claimed from the open ones (once), stamped, then it joins its
 * request's record here, or `join_record` decides (a request closed meanwhile, the limit). */
static int
fast_finish(PyObject *builder, PyObject *span, PyObject *exc)
{
    int result = 0;
    PyObject *cpu = NULL, *opened = NULL, *context = NULL, *end = NULL, *error = NULL;
    PyObject *closed = NULL, *bridge = NULL, *limit = NULL, *spans = NULL;

    if ((cpu = get_slot(span, SLOT_CPU)) == NULL)
        goto error;
    if (cpu != Py_None)
        goto done; /* its CPU time is measured */
    if ((opened = PyObject_GetAttr(builder, str_open_spans)) == NULL)
        goto error;
    if (!PyDict_CheckExact(opened))
        goto done;
    if ((context = get_slot(span, SLOT_CONTEXT)) == NULL)
        goto error;
    if (!PyTuple_Check(context) || PyTuple_GET_SIZE(context) < 2)
        goto done;

    /* Once: only the one that takes it out of the open spans goes on. */
    PyObject *key = PyTuple_GET_ITEM(context, 1);
    PyObject *held = PyDict_GetItemWithError(opened, key); /* borrowed, compared only */
    if (held != span) {
        if (held == NULL && PyErr_Occurred())
            goto error;
        result = 1; /* already finished elsewhere */
        goto done;
    }
    if (PyDict_DelItem(opened, key) < 0)
        goto error;
    result = -1; /* from here on the span is taken: a failure is an error */
    if ((end = PyObject_CallNoArgs(S.wall_ns)) == NULL
        || set_slot(span, SLOT_END_TIME, end) < 0
        || set_slot(span, SLOT_CLOSED, Py_True) < 0
        || set_slot(span, SLOT_BUILDER, Py_None) < 0)
        goto done;
    if (exc != Py_None) {
        PyObject *qualname = PyObject_GetAttr((PyObject *)Py_TYPE(exc), str_qualname);
        PyObject *text = qualname != NULL ? PyObject_Str(exc) : NULL;
        if (text != NULL)
            error = PyTuple_Pack(2, qualname, text);
        Py_XDECREF(qualname);
        Py_XDECREF(text);
        if (error == NULL || set_slot(span, SLOT_ERROR, error) < 0)
            goto done;
    }
    /* Read now, after any Python code above (an exception's __str__, another thread). */
    if ((closed = PyObject_GetAttr(builder, str_closed)) == NULL
        || (bridge = PyObject_GetAttr(builder, str_bridge)) == NULL
        || (limit = PyObject_GetAttr(bridge, str_max_timers)) == NULL
        || (spans = PyObject_GetAttr(builder, str_spans)) == NULL)
        goto done;
    int overflow = 0;
    long long max_timers = PyLong_Check(limit) ? PyLong_AsLongLongAndOverflow(limit, &overflow) : -1;
    if (max_timers == -1 && PyErr_Occurred())
        PyErr_Clear();
    if (closed == Py_False && !overflow && max_timers >= 0
        && (spans == Py_None ? max_timers > 0
                             : PyList_CheckExact(spans) && PyList_GET_SIZE(spans) < max_timers)) {
        if (spans == Py_None) {
            Py_SETREF(spans, PyList_New(0));
            if (spans == NULL || PyObject_SetAttr(builder, str_spans, spans) < 0)
                goto done;
        }
        if (PyList_Append(spans, span) < 0) /* itself, as finish_timer appends it */
            goto done;
    }
    else {
        PyObject *call[2] = {builder, span};
        PyObject *joined = PyObject_Vectorcall(S.join_record, call, 2, NULL);
        if (joined == NULL)
            goto done;
        Py_DECREF(joined);
    }
    result = 1;
    goto done;
error:
    result = -1;
done:
    Py_XDECREF(cpu);
    Py_XDECREF(opened);
    Py_XDECREF(context);
    Py_XDECREF(end);
    Py_XDECREF(error);
    Py_XDECREF(closed);
    Py_XDECREF(bridge);
    Py_XDECREF(limit);
    Py_XDECREF(spans);
    return result;
}

/* A slow path's Python callable, or RuntimeError when setup() has not run. */
static PyObject *
slow_path(PyObject *callable)
{
    if (callable == NULL)
        PyErr_SetString(PyExc_RuntimeError, "otel_bridge._speedups.setup() has not run");
    return callable;
}

static PyObject *
core_enter(TimerCore *self, PyObject *Py_UNUSED(ignored))
{
    self->fast = 0;
    if (S.ready) {
        PyObject *builder;
        if (PyContextVar_Get(S.current, Py_None, &builder) < 0)
            return NULL;
        int done = builder != Py_None ? fast_start(self, builder) : 0;
        Py_DECREF(builder);
        if (done < 0)
            return NULL;
        if (done)
            return Py_NewRef(self);
    }
    if (slow_path(S.enter_slow) == NULL)
        return NULL;
    return PyObject_CallOneArg(S.enter_slow, (PyObject *)self);
}

static PyObject *
core_exit(TimerCore *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    int fast = self->fast;
    self->fast = 0;
    /* Only a block the fast path entered leaves on it; anything else, as the Python code. */
    if (!fast || !S.ready || nargs != 3 || kwnames != NULL || S.context_var == NULL)
        goto slow;
    PyObject *span = self->span, *token = self->token;
    if (span == NULL || Py_TYPE(span) != S.timer_span || token == NULL || token == Py_None)
        goto slow;
    /* Taken out of the instance first, as the Python code does. */
    self->span = Py_NewRef(Py_None);
    self->token = Py_NewRef(Py_None);
    PyObject *builder = self->builder;
    self->builder = Py_NewRef(Py_None);
    PyObject *result = NULL;
    if (PyContextVar_Reset(S.context_var, token) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)
            && !PyErr_ExceptionMatches(PyExc_RuntimeError))
            goto end;
        PyErr_Clear(); /* a token of another context: the API logs it */
        PyObject *detached = PyObject_CallOneArg(S.otel_detach, token);
        if (detached == NULL)
            goto end;
        Py_DECREF(detached);
    }
    if (builder == NULL || builder == Py_None) {
        result = Py_NewRef(Py_None);
        goto end;
    }
    PyObject *closed = get_slot(span, SLOT_CLOSED);
    if (closed == NULL)
        goto end;
    int was_closed = PyObject_IsTrue(closed);
    Py_DECREF(closed);
    if (was_closed < 0)
        goto end;
    if (was_closed) {
        /* the app called end() */
        PyObject *failed = args[0] != Py_None ? Py_True : Py_False;
        PyObject *said = PyObject_CallOneArg(S.ended_early, failed);
        if (said == NULL)
            goto end;
        Py_DECREF(said);
    }
    else {
        int done = fast_finish(builder, span, args[1]);
        if (done < 0)
            goto end;
        if (!done) {
            PyObject *call[3] = {builder, span, args[1]};
            PyObject *finished = PyObject_Vectorcall(S.finish_timer, call, 3, NULL);
            if (finished == NULL)
                goto end;
            Py_DECREF(finished);
        }
    }
    result = Py_NewRef(Py_None);
end:
    Py_DECREF(span);
    Py_DECREF(token);
    Py_XDECREF(builder);
    return result;

slow:;
    /* _PyTimerCore.__exit__(self, *args, **kwargs): its own errors for a wrong call. */
    if (slow_path(S.exit_slow) == NULL)
        return NULL;
    Py_ssize_t total = nargs + (kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject **call = PyMem_Malloc((total + 1) * sizeof(PyObject *));
    if (call == NULL)
        return PyErr_NoMemory();
    call[0] = (PyObject *)self;
    for (Py_ssize_t i = 0; i < total; i++)
        call[i + 1] = args[i];
    PyObject *out = PyObject_Vectorcall(S.exit_slow, call, nargs + 1, kwnames);
    PyMem_Free(call);
    return out;
}

/* " ".join(tags.values()) or "timer", for a dict of strs, written straight into the str. */
static PyObject *
joined_values(PyObject *tags)
{
    Py_ssize_t pos = 0, total = 0, count = 0;
    Py_UCS4 widest = 127; /* (the space) */
    PyObject *key, *value;
    while (PyDict_Next(tags, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(value)) {
            PyErr_SetString(PyExc_TypeError, "joined_values(): a tag is no str");
            return NULL;
        }
        total += PyUnicode_GET_LENGTH(value);
        if (PyUnicode_MAX_CHAR_VALUE(value) > widest)
            widest = PyUnicode_MAX_CHAR_VALUE(value);
        count++;
    }
    if (count > 0)
        total += count - 1;
    if (total == 0)
        return Py_NewRef(str_timer);
    PyObject *name = PyUnicode_New(total, widest);
    if (name == NULL)
        return NULL;
    Py_ssize_t at = 0, written = 0;
    pos = 0;
    while (PyDict_Next(tags, &pos, &key, &value)) {
        if (written++ > 0) {
            if (at >= total)
                break; /* (the tags changed: caught below) */
            PyUnicode_WRITE(PyUnicode_KIND(name), PyUnicode_DATA(name), at++, ' ');
        }
        Py_ssize_t length = PyUnicode_GET_LENGTH(value);
        if (at + length > total
            || PyUnicode_CopyCharacters(name, at, value, 0, length) < 0) {
            Py_DECREF(name);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_RuntimeError, "joined_values(): the tags changed");
            return NULL;
        }
        at += length;
    }
    if (at != total || written != count) {
        Py_DECREF(name);
        PyErr_SetString(PyExc_RuntimeError, "joined_values(): the tags changed");
        return NULL;
    }
    return name;
}

/* timer(**tags): every tag a string, the usual case, here; anything else in Python. */
static int
core_init(TimerCore *self, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value, *tags = NULL, *name = NULL;
    /* As the Python __init__ begins: the block's state none yet. */
    Py_XSETREF(self->span, Py_NewRef(Py_None));
    Py_XSETREF(self->token, Py_NewRef(Py_None));
    Py_XSETREF(self->builder, Py_NewRef(Py_None));
    Py_XSETREF(self->kind, Py_NewRef(Py_None));
    self->fast = 0;
    if (!S.ready || PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && !PyDict_CheckExact(kwargs)))
        goto slow;
    if (kwargs != NULL) {
        while (PyDict_Next(kwargs, &pos, &key, &value))
            if (!PyUnicode_CheckExact(value))
                goto slow;
        /* As **tags is: a dict of its own. The call's keyword dict, which only the call holds
         * (made for it), is that already; a caller's own (timer(**tags)) is copied. */
        tags = Py_REFCNT(kwargs) == 1 ? Py_NewRef(kwargs) : PyDict_Copy(kwargs);
    }
    else
        tags = PyDict_New();
    if (tags == NULL)
        return -1;
    name = PyDict_GetItemWithError(tags, str_name); /* borrowed */
    if (name != NULL)
        Py_INCREF(name);
    else if (PyErr_Occurred())
        goto error;
    else if ((name = joined_values(tags)) == NULL)
        goto error;
    Py_XSETREF(self->attributes, tags);
    Py_XSETREF(self->name, name);
    return 0;
error:
    Py_XDECREF(tags);
    return -1;
slow:;
    if (slow_path(S.init_slow) == NULL)
        return -1;
    PyObject *call = PyTuple_New(PyTuple_GET_SIZE(args) + 1);
    if (call == NULL)
        return -1;
    PyTuple_SET_ITEM(call, 0, Py_NewRef((PyObject *)self));
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(args); i++)
        PyTuple_SET_ITEM(call, i + 1, Py_NewRef(PyTuple_GET_ITEM(args, i)));
    PyObject *done = PyObject_Call(S.init_slow, call, kwargs);
    Py_DECREF(call);
    if (done == NULL)
        return -1;
    Py_DECREF(done);
    return 0;
}

static int
core_traverse(TimerCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->attributes);
    Py_VISIT(self->builder);
    Py_VISIT(self->kind);
    Py_VISIT(self->name);
    Py_VISIT(self->span);
    Py_VISIT(self->token);
    return 0;
}

static int
core_clear(TimerCore *self)
{
    Py_CLEAR(self->attributes);
    Py_CLEAR(self->builder);
    Py_CLEAR(self->kind);
    Py_CLEAR(self->name);
    Py_CLEAR(self->span);
    Py_CLEAR(self->token);
    return 0;
}

static void
core_dealloc(TimerCore *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    core_clear(self);
    type->tp_free((PyObject *)self); /* a subclass's dealloc releases its heap type */
}

static PyMethodDef core_methods[] = {
    {"__enter__", (PyCFunction)core_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))core_exit, METH_FASTCALL | METH_KEYWORDS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"_attributes", T_OBJECT_EX, offsetof(TimerCore, attributes), 0, NULL},
    {"_builder", T_OBJECT_EX, offsetof(TimerCore, builder), 0, NULL},
    {"_kind", T_OBJECT_EX, offsetof(TimerCore, kind), 0, NULL},
    {"_name", T_OBJECT_EX, offsetof(TimerCore, name), 0, NULL},
    {"_span", T_OBJECT_EX, offsetof(TimerCore, span), 0, NULL},
    {"_token", T_OBJECT_EX, offsetof(TimerCore, token), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject TimerCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "otel_bridge._speedups.TimerCore",
    .tp_basicsize = sizeof(TimerCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The C base of otel_bridge.timer: its __enter__ and __exit__.",
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
    .tp_members = core_members,
    .tp_init = (initproc)core_init,
    .tp_new = PyType_GenericNew,
};

/* ---- query_timer(name, attributes) (otel_bridge.timers): what its __init__ does, here for
 * Django's execute wrapper, which makes one for every query. */

static struct {
    PyTypeObject *type; /* otel_bridge.timers.query_timer */
    PyObject *kind;     /* SpanKind.CLIENT */
} Q;

static PyObject *
new_query_timer(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "new_query_timer(name, attributes)");
        return NULL;
    }
    if (Q.type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_queries() was not called");
        return NULL;
    }
    TimerCore *made = (TimerCore *)Q.type->tp_alloc(Q.type, 0);
    if (made == NULL)
        return NULL;
    made->span = Py_NewRef(Py_None);
    made->token = Py_NewRef(Py_None);
    made->builder = Py_NewRef(Py_None);
    made->kind = Py_NewRef(Q.kind);
    made->attributes = Py_NewRef(args[1]);
    made->name = Py_NewRef(args[0]);
    made->fast = 0;
    return (PyObject *)made;
}

static PyObject *
setup_queries(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"query_timer", "client", NULL};
    PyObject *type, *client;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!O", names, &PyType_Type, &type, &client))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)type, &TimerCoreType)
        || ((PyTypeObject *)type)->tp_basicsize != TimerCoreType.tp_basicsize) {
        PyErr_SetString(PyExc_ValueError, "setup_queries(): not a TimerCore of its layout");
        return NULL;
    }
    Py_XSETREF(Q.type, (PyTypeObject *)Py_NewRef(type));
    Py_XSETREF(Q.kind, Py_NewRef(client));
    Py_RETURN_NONE;
}

static PyObject *
setup(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {
        "current", "context_var", "span_key", "context_type", "server_span", "timer_span",
        "span_context", "flags", "random_trace_id", "getrandbits", "wall_ns", "internal",
        "slots", "enter_slow", "exit_slow", "finish_timer", "ended_early", "otel_detach", "init_slow",
        "join_record", NULL,
    };
    PyObject *current, *context_var, *span_key, *context_type, *server_span, *timer_span,
        *span_context, *flags, *getrandbits, *wall_ns, *internal, *slots, *enter_slow,
        *exit_slow, *finish_timer, *ended_early, *otel_detach, *init_slow, *join_record;
    long random_trace_id;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "$OOOOO!O!O!O!lOOOO!OOOOOOO", names, &current, &context_var,
            &span_key, &context_type, &PyType_Type, &server_span, &PyType_Type, &timer_span,
            &PyType_Type, &span_context, &PyTuple_Type, &flags, &random_trace_id, &getrandbits,
            &wall_ns, &internal, &PyTuple_Type, &slots, &enter_slow, &exit_slow, &finish_timer,
            &ended_early, &otel_detach, &init_slow, &join_record))
        return NULL;
    if (!PyContextVar_CheckExact(current)
        || (context_var != Py_None && !PyContextVar_CheckExact(context_var))) {
        PyErr_SetString(PyExc_TypeError, "current and context_var must be ContextVars");
        return NULL;
    }
    if (PyTuple_GET_SIZE(slots) != SLOT_COUNT) {
        PyErr_Format(PyExc_ValueError, "slots: %d descriptors expected", SLOT_COUNT);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < SLOT_COUNT; i++) {
        PyObject *descr = PyTuple_GET_ITEM(slots, i);
        if (Py_TYPE(descr)->tp_descr_get == NULL || Py_TYPE(descr)->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_TypeError, "slots must be data descriptors");
            return NULL;
        }
    }
    if (!PyType_IsSubtype((PyTypeObject *)span_context, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "span_context must be a tuple type");
        return NULL;
    }
    S.ready = 0;
    Py_XSETREF(S.current, Py_NewRef(current));
    Py_XSETREF(S.context_var, context_var == Py_None ? NULL : Py_NewRef(context_var));
    Py_XSETREF(S.span_key, Py_NewRef(span_key));
    Py_XSETREF(S.context_type, Py_NewRef(context_type));
    Py_XSETREF(S.server_span, (PyTypeObject *)Py_NewRef(server_span));
    Py_XSETREF(S.timer_span, (PyTypeObject *)Py_NewRef(timer_span));
    Py_XSETREF(S.span_context, (PyTypeObject *)Py_NewRef(span_context));
    Py_XSETREF(S.flags, Py_NewRef(flags));
    S.random_trace_id = random_trace_id;
    Py_XSETREF(S.getrandbits, Py_NewRef(getrandbits));
    Py_XSETREF(S.wall_ns, Py_NewRef(wall_ns));
    Py_XSETREF(S.internal, Py_NewRef(internal));
    Py_XSETREF(S.slots, Py_NewRef(slots));
    Py_XSETREF(S.enter_slow, Py_NewRef(enter_slow));
    Py_XSETREF(S.exit_slow, Py_NewRef(exit_slow));
    Py_XSETREF(S.finish_timer, Py_NewRef(finish_timer));
    Py_XSETREF(S.ended_early, Py_NewRef(ended_early));
    Py_XSETREF(S.otel_detach, Py_NewRef(otel_detach));
    Py_XSETREF(S.init_slow, Py_NewRef(init_slow));
    Py_XSETREF(S.join_record, Py_NewRef(join_record));
    S.ready = 1;
    Py_RETURN_NONE;
}

/* ---- The wide event's timer summary (otel_bridge.exporters.wide_events._event._timers_text) */

static struct {
    int ready;
    Py_ssize_t timers, dropped;       /* RequestRecord's indices */
    Py_ssize_t kind, duration, hits;  /* Timer's indices */
    PyObject *kind_keys;              /* dict: kind -> (count key, ms key), JSON */
    PyObject *fallback;               /* the Python function, for anything else */
    PyObject *count_key, *dropped_key;
    PyObject *db_keys;                /* dict: a database figure's name -> its JSON key */
    PyObject *figures_fallback;       /* the Python _figures_text */
} W;

#define MAX_KINDS 8

#define TEXT_MAX 4096

/* Appends a str's UTF-8 to `buffer`; 0 if it does not fit (or is no str). */
static int
put_text(char *buffer, Py_ssize_t *used, PyObject *text)
{
    Py_ssize_t size;
    const char *bytes = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &size) : NULL;
    if (bytes == NULL || *used + size > TEXT_MAX)
        return 0;
    memcpy(buffer + *used, bytes, size);
    *used += size;
    return 1;
}

static int
put_integer(char *buffer, Py_ssize_t *used, long long value)
{
    int size = snprintf(buffer + *used, TEXT_MAX - *used, "%lld", value);
    if (size < 0 || *used + size >= TEXT_MAX)
        return 0;
    *used += size;
    return 1;
}

/* round(value, 3) for a finite value, as float.__round__ rounds (a correctly rounded
 * 3-decimal string, read back); 0 and an error set if that fails. */
static int
round_3(double value, double *rounded)
{
    char *fixed = PyOS_double_to_string(value, 'f', 3, 0, NULL);
    if (fixed == NULL)
        return 0;
    *rounded = PyOS_string_to_double(fixed, NULL, NULL);
    PyMem_Free(fixed);
    return !(*rounded == -1.0 && PyErr_Occurred());
}

/* repr(value) for a finite float, as float.__repr__ writes it. */
static int
put_float(char *buffer, Py_ssize_t *used, double value)
{
    char *text = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL)
        return 0;
    size_t size = strlen(text);
    int fits = *used + (Py_ssize_t)size < TEXT_MAX;
    if (fits) {
        memcpy(buffer + *used, text, size);
        *used += size;
    }
    PyMem_Free(text);
    return fits;
}

/* repr(round(value, 3)), for a finite value. */
static int
put_milliseconds(char *buffer, Py_ssize_t *used, double value)
{
    double rounded;
    if (!isfinite(value) || !round_3(value, &rounded))
        return 0;
    return put_float(buffer, used, rounded);
}

/* What `_timers_text(record)` returns, when every kind's keys are known and each number fits;
 * else that function's own answer. */
static PyObject *
timers_text(PyObject *module, PyObject *record)
{
    if (!W.ready || !PyTuple_Check(record) || PyTuple_GET_SIZE(record) <= W.timers
        || PyTuple_GET_SIZE(record) <= W.dropped)
        goto slow;
    PyObject *timers = PyTuple_GET_ITEM(record, W.timers);
    if (!PyTuple_Check(timers))
        goto slow;
    PyObject *kinds[MAX_KINDS];
    long long counts[MAX_KINDS];
    double ms[MAX_KINDS];
    int found = 0;
    long long total = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(timers); i++) {
        PyObject *timer = PyTuple_GET_ITEM(timers, i);
        if (!PyTuple_Check(timer) || PyTuple_GET_SIZE(timer) <= W.hits
            || PyTuple_GET_SIZE(timer) <= W.duration || PyTuple_GET_SIZE(timer) <= W.kind)
            goto slow;
        PyObject *kind = PyTuple_GET_ITEM(timer, W.kind);
        PyObject *hits_object = PyTuple_GET_ITEM(timer, W.hits);
        PyObject *duration_object = PyTuple_GET_ITEM(timer, W.duration);
        if (!PyUnicode_CheckExact(kind) || !PyLong_CheckExact(hits_object)
            || !PyLong_CheckExact(duration_object))
            goto slow;
        int overflow;
        long long hits = PyLong_AsLongLongAndOverflow(hits_object, &overflow);
        if (overflow || (hits == -1 && PyErr_Occurred()))
            goto slow_clear;
        /* int / float in Python: the int made a double (exactly, below 2**53), then divided. */
        long long duration = PyLong_AsLongLongAndOverflow(duration_object, &overflow);
        if (overflow || (duration == -1 && PyErr_Occurred()) || duration > (1LL << 53)
            || duration < -(1LL << 53))
            goto slow_clear;
        if (hits > (1LL << 40) || hits < -(1LL << 40))
            goto slow;
        total += hits;
        int k = 0;
        while (k < found && kinds[k] != kind) {
            int same = PyUnicode_Compare(kinds[k], kind);
            if (same == -1 && PyErr_Occurred())
                goto slow_clear;
            if (same == 0)
                break;
            k++;
        }
        if (k == found) {
            if (found == MAX_KINDS)
                goto slow;
            kinds[found] = kind;
            counts[found] = hits;
            ms[found] = 0.0 + (double)duration / 1e6;
            found++;
        }
        else {
            counts[k] += hits;
            ms[k] += (double)duration / 1e6;
        }
    }
    /* Kind order when there are several (sorted() of the names). */
    int order[MAX_KINDS];
    for (int k = 0; k < found; k++)
        order[k] = k;
    if (found > 1) {
        for (int a = 1; a < found; a++) {
            int b = a;
            while (b > 0) {
                int less = PyUnicode_Compare(kinds[order[b]], kinds[order[b - 1]]);
                if (less == -1 && PyErr_Occurred())
                    goto slow_clear;
                if (less >= 0)
                    break;
                int swap = order[b];
                order[b] = order[b - 1];
                order[b - 1] = swap;
                b--;
            }
        }
    }
    /* Written into one buffer: numbers as repr() writes them, each kind's milliseconds
     * rounded as round(ms, 3) rounds (a correctly rounded 3-decimal string, read back). */
    char buffer[TEXT_MAX];
    Py_ssize_t used = 0;
    if (!put_text(buffer, &used, W.count_key) || !put_integer(buffer, &used, total))
        goto slow_clear;
    for (int n = 0; n < found; n++) {
        int k = order[n];
        PyObject *keys = Py_XNewRef(PyDict_GetItemWithError(W.kind_keys, kinds[k]));
        if (keys == NULL || !PyTuple_CheckExact(keys) || PyTuple_GET_SIZE(keys) != 2) {
            Py_XDECREF(keys);
            if (PyErr_Occurred())
                return NULL;
            goto slow; /* a kind seen for the first time: the Python code keeps its keys */
        }
        int written = put_text(buffer, &used, PyTuple_GET_ITEM(keys, 0))
                      && put_integer(buffer, &used, counts[k])
                      && put_text(buffer, &used, PyTuple_GET_ITEM(keys, 1))
                      && put_milliseconds(buffer, &used, ms[k]);
        Py_DECREF(keys);
        if (!written)
            goto slow_clear;
    }
    PyObject *dropped = PyTuple_GET_ITEM(record, W.dropped);
    if (!PyLong_CheckExact(dropped))
        goto slow;
    int overflow;
    long long count = PyLong_AsLongLongAndOverflow(dropped, &overflow);
    if (overflow || (count == -1 && PyErr_Occurred()))
        goto slow_clear;
    if (count != 0
        && (!put_text(buffer, &used, W.dropped_key) || !put_integer(buffer, &used, count)))
        goto slow_clear;
    return PyUnicode_DecodeUTF8(buffer, used, NULL);
slow_clear:
    PyErr_Clear();
slow:
    if (W.fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_views() was not called");
        return NULL;
    }
    return PyObject_CallOneArg(W.fallback, record);
}

/* What `_figures_text(fields)` returns (the database figures written straight, or None when
 * `fields` holds anything else): here for ints and finite floats of the known names. */
static PyObject *
figures_text(PyObject *module, PyObject *fields)
{
    char buffer[TEXT_MAX];
    Py_ssize_t used = 0;
    PyObject *names = NULL, *name = NULL, *value = NULL;
    if (!W.ready || W.db_keys == NULL)
        goto slow;
    if ((names = PyObject_GetIter(fields)) == NULL)
        return NULL;
    while ((name = PyIter_Next(names)) != NULL) {
        PyObject *key = PyDict_GetItemWithError(W.db_keys, name); /* borrowed, a str of it */
        if (key == NULL) {
            if (PyErr_Occurred())
                goto error;
            Py_DECREF(name);
            Py_DECREF(names);
            Py_RETURN_NONE; /* another field */
        }
        if ((value = PyObject_GetItem(fields, name)) == NULL)
            goto error;
        int written = put_text(buffer, &used, key);
        if (written && PyLong_CheckExact(value)) {
            int overflow;
            long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (overflow || (number == -1 && PyErr_Occurred()))
                goto slow_clear;
            written = put_integer(buffer, &used, number);
        }
        else if (written && PyFloat_CheckExact(value)) {
            double number = PyFloat_AS_DOUBLE(value);
            if (!isfinite(number)) {
                Py_DECREF(value);
                Py_DECREF(name);
                Py_DECREF(names);
                Py_RETURN_NONE; /* not JSON: the encoder's */
            }
            written = put_float(buffer, &used, number);
        }
        else if (written) {
            Py_DECREF(value);
            Py_DECREF(name);
            Py_DECREF(names);
            Py_RETURN_NONE;
        }
        Py_CLEAR(value);
        Py_CLEAR(name);
        if (!written)
            goto slow_clear;
    }
    Py_CLEAR(names);
    if (PyErr_Occurred())
        return NULL;
    return PyUnicode_DecodeUTF8(buffer, used, NULL);
slow_clear:
    PyErr_Clear();
    Py_XDECREF(value);
    Py_XDECREF(name);
    Py_XDECREF(names);
slow:
    if (W.figures_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_views() was not called");
        return NULL;
    }
    return PyObject_CallOneArg(W.figures_fallback, fields);
error:
    Py_XDECREF(value);
    Py_XDECREF(name);
    Py_XDECREF(names);
    return NULL;
}

static PyObject *
setup_views(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"timers", "dropped", "kind", "duration", "hits", "kind_keys",
                            "fallback", "db_keys", "figures_fallback", NULL};
    Py_ssize_t timers, dropped, kind, duration, hits;
    PyObject *kind_keys, *fallback, *db_keys, *figures_fallback;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$nnnnnO!OO!O", names, &timers, &dropped,
                                     &kind, &duration, &hits, &PyDict_Type, &kind_keys,
                                     &fallback, &PyDict_Type, &db_keys, &figures_fallback))
        return NULL;
    W.ready = 0;
    W.timers = timers;
    W.dropped = dropped;
    W.kind = kind;
    W.duration = duration;
    W.hits = hits;
    Py_XSETREF(W.kind_keys, Py_NewRef(kind_keys));
    Py_XSETREF(W.fallback, Py_NewRef(fallback));
    Py_XSETREF(W.db_keys, Py_NewRef(db_keys));
    Py_XSETREF(W.figures_fallback, Py_NewRef(figures_fallback));
    if (W.count_key == NULL && (W.count_key = PyUnicode_FromString(",\"timers.count\":")) == NULL)
        return NULL;
    if (W.dropped_key == NULL
        && (W.dropped_key = PyUnicode_FromString(",\"timers.dropped\":")) == NULL)
        return NULL;
    W.ready = 1;
    Py_RETURN_NONE;
}

/* ---- A request's timers from its spans (otel_bridge.closing.fold_timers), when every span is
 * a timer's the app did not change, with tags seen before, or a query's (Django's timer, or
 * another instrumentation's span: child_spans.foreign_timer) whose tags were made before, and
 * its database timers come one after another in time, or as a query's span holding its own
 * child query's span (Django's around the driver's). */

static struct {
    int ready;
    PyTypeObject *timer_span;
    PyTypeObject *foreign_span; /* otel_bridge._foreign_spans.ForeignSpan */
    PyTypeObject *timer;     /* otel_bridge.record.Timer */
    PyObject *slots;         /* TimerSpan's member descriptors, in SLOT_ order */
    PyObject *internal;      /* SpanKind.INTERNAL */
    PyObject *client;        /* SpanKind.CLIENT */
    PyObject *given;         /* child_spans.GIVEN: tags as given -> (tags, kind) */
    PyObject *db_tags;       /* _database._TAGS: (op, server) -> a query's tags */
    PyTypeObject *counts;    /* _database.QueryCounts */
    PyObject *count_slots;   /* its member descriptors: count, duplicates, nanoseconds, seen */
    Py_ssize_t max_statements;
    PyObject *figures;       /* _database.FIGURES: the figures' names, in QueryCounts.fields' order */
    PyObject *fields;        /* the Python QueryCounts.fields */
    PyObject *export;        /* otel_bridge._timer_spans: its _export, a timer's span to its
                                processors, looked up at each call as the Python code does */
    PyObject *fallback;      /* the Python fold_timers */
    PyObject *error_type;    /* "error.type" */
    PyObject *db;            /* "db": a query's timer kind */
    PyObject *query;         /* "query": a query's op when nothing names it */
    PyObject *keys[8];       /* the attributes a query's span is read by (enum below) */
} F;

enum {
    KEY_SYSTEM_NAME, KEY_SYSTEM, KEY_OPERATION_NAME, KEY_OPERATION, KEY_QUERY_TEXT, KEY_STATEMENT,
    KEY_SERVER_ADDRESS, KEY_NET_PEER_NAME
};
static const char *key_names[8] = {
    "db.system.name", "db.system", "db.operation.name", "db.operation", "db.query.text",
    "db.statement", "server.address", "net.peer.name",
};

/* What the fold learns of a request's database timers as it goes (fold_timers), in the
 * spans' order (their end order). The "db" timers come one after another, or as a query's span
 * holding its own child query's span (Django's holding the driver's), or another
 * instrumentation's span of the same query beside it (SQLAlchemy's around the driver's): the
 * same query, whose inner span the Python code leaves out; anything else goes to the Python
 * code. */
typedef struct {
    int any_query;       /* a query's span is among them */
    int any_db;          /* a timer of kind "db" (a query's, or an app's group="db") */
    int overlap;         /* one of them starts before an earlier one ends: the Python code */
    long long last_end;  /* the latest end of the "db" timers so far (from the request's start) */
    long long count;     /* queries with a statement, their time, the repeated ones */
    long long nanoseconds;
    long long duplicates;
    PyObject *seen;      /* the statements' hashes (a set), made with the first */
    Py_ssize_t index;    /* the span being folded, in the request's spans */
    Py_ssize_t size;     /* how many they are */
    /* The last "db" timer: where it is, when, whose, and its query's statement not counted
     * yet (its holder, if one comes next, is the one counted). */
    Py_ssize_t last_index;
    long long last_since, last_lasted;
    int last_query;      /* a query's span (its ids known: the Python code's otherwise) */
    int last_holds;      /* it holds a query's span already */
    unsigned long long last_parent;
    PyObject *last_span; /* (a new reference, for its instrumentation's scope) */
    int group_before;    /* a "db" timer ended before the last one's group */
    long long before_end;  /* the latest end of those */
    int pending;         /* the last one is a query not counted yet */
    PyObject *pending_statement; /* (or NULL: not a statement, not counted) */
    long long pending_lasted;
    char *inner;         /* spans left out: a query's span held by its parent's (or NULL) */
} FoldState;

/* _database.QueryCounts.add for the last query's span, once it is known to stand for its
 * query: 0, or -1 on error. */
static int
count_pending(FoldState *state)
{
    if (!state->pending)
        return 0;
    state->pending = 0;
    PyObject *statement = state->pending_statement;
    state->pending_statement = NULL;
    if (statement == NULL) /* a "connect" */
        return 0;
    int result = -1;
    if (__builtin_add_overflow(state->nanoseconds, state->pending_lasted, &state->nanoseconds))
        goto done; /* (no error set: the Python code) */
    state->count++;
    Py_hash_t hash = PyObject_Hash(statement);
    if (hash == -1)
        goto done;
    if (state->seen == NULL && (state->seen = PySet_New(NULL)) == NULL)
        goto done;
    PyObject *hashed = PyLong_FromSsize_t(hash);
    if (hashed == NULL)
        goto done;
    int found = PySet_Contains(state->seen, hashed);
    if (found > 0)
        state->duplicates++;
    else if (found == 0 && PySet_GET_SIZE(state->seen) < F.max_statements)
        found = PySet_Add(state->seen, hashed);
    Py_DECREF(hashed);
    result = found < 0 ? -1 : 0;
done:
    Py_DECREF(statement);
    return result;
}

/* A span's id and its parent's (0 for none, as the Python fold reads them): 1, 0 where the
 * Python code must (ids of another shape), -1 on error. */
static int
span_ids(PyObject *span, int foreign, unsigned long long *id, unsigned long long *parent_id)
{
    PyObject *context = slot_of(F.slots, span, SLOT_CONTEXT);
    if (context == NULL)
        return -1;
    PyObject *parent = slot_of(F.slots, span, SLOT_PARENT);
    if (parent == NULL) {
        Py_DECREF(context);
        return -1;
    }
    int known = 0;
    *parent_id = 0;
    if (PyTuple_Check(context) && PyTuple_GET_SIZE(context) > 1
        && PyLong_CheckExact(PyTuple_GET_ITEM(context, 1))
        && ((parent == Py_None && foreign) /* (a timer's parent[1]: the Python code raises) */
            || (PyTuple_Check(parent) && PyTuple_GET_SIZE(parent) > 1
                && PyLong_CheckExact(PyTuple_GET_ITEM(parent, 1))))) {
        *id = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(context, 1));
        known = !(*id == (unsigned long long)-1 && PyErr_Occurred());
        if (known && parent != Py_None) {
            *parent_id = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(parent, 1));
            known = !(*parent_id == (unsigned long long)-1 && PyErr_Occurred());
        }
        if (!known)
            PyErr_Clear(); /* (negative, or past 64 bits) */
    }
    Py_DECREF(context);
    Py_DECREF(parent);
    return known;
}

/* (setup_fold's own copy of the descriptors: the fold works without the timers' setup) */
#define fold_slot(span, slot) slot_of(F.slots, (span), (slot))

/* attributes[key] (a new reference, or NULL) where it is absent or a str; *odd = 1 for
 * another value (the Python code reads those). */
static PyObject *
text_at(PyObject *attributes, int key, int *odd)
{
    PyObject *value = Py_XNewRef(PyDict_GetItemWithError(attributes, F.keys[key]));
    if (value != NULL && !PyUnicode_CheckExact(value))
        *odd = 1;
    return value;
}

/* _database.verb: the first word of `text` (a str) in lowercase, when it is a plain word of
 * at most 16 ASCII letters after whitespace and opening parentheses; 0 when there is none.
 * `word` gets the letters (17 bytes). As the regular expression \s*\(*\s*([A-Za-z]{1,16})
 * (?![A-Za-z]) matches (re's \s on a str is Py_UNICODE_ISSPACE). */
static int
verb_of(PyObject *text, char *word)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text), i = 0;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    while (i < length && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)))
        i++;
    while (i < length && PyUnicode_READ(kind, data, i) == '(')
        i++;
    while (i < length && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)))
        i++;
    int letters = 0;
    for (; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            break;
        if (letters == 16)
            return 0; /* a 17th letter: no word of at most 16 */
        word[letters++] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    word[letters] = '\0';
    return letters;
}

/* A query's span's tags as _database.db_tags makes them, and its statement (or NULL), both new
 * references; NULL tags with no error set where the Python code must (an attribute of
 * another type, tags not made yet). */
static PyObject *
query_tags(PyObject *name, PyObject *attributes, PyObject **statement)
{
    int odd = 0;
    char word[17];
    int letters = 0;
    PyObject *tags = NULL, *operation = NULL, *text = NULL, *server = NULL;
    operation = text_at(attributes, KEY_OPERATION_NAME, &odd);
    if (operation == NULL || PyUnicode_GET_LENGTH(operation) == 0) {
        Py_XDECREF(operation);
        operation = text_at(attributes, KEY_OPERATION, &odd);
    }
    text = text_at(attributes, KEY_QUERY_TEXT, &odd);
    if (text == NULL)
        text = text_at(attributes, KEY_STATEMENT, &odd);
    server = text_at(attributes, KEY_SERVER_ADDRESS, &odd);
    if (server == NULL || PyUnicode_GET_LENGTH(server) == 0) {
        Py_XDECREF(server); /* ("" or None: None) */
        server = text_at(attributes, KEY_NET_PEER_NAME, &odd);
    }
    if (odd || PyErr_Occurred() || !PyUnicode_CheckExact(name))
        goto done;
    if (operation != NULL && PyUnicode_GET_LENGTH(operation) > 0)
        letters = verb_of(operation, word);
    if (letters == 0 && text != NULL)
        letters = verb_of(text, word);
    if (letters == 0)
        letters = verb_of(name, word);
    PyObject *op = letters > 0 ? PyUnicode_FromStringAndSize(word, letters) : Py_NewRef(F.query);
    if (op == NULL)
        goto done;
    PyObject *key = PyTuple_Pack(2, op, server != NULL ? server : Py_None);
    Py_DECREF(op);
    if (key == NULL)
        goto done;
    tags = Py_XNewRef(PyDict_GetItemWithError(F.db_tags, key));
    Py_DECREF(key);
    if (tags != NULL) {
        *statement = text;
        text = NULL;
    }
done:
    Py_XDECREF(operation);
    Py_XDECREF(text);
    Py_XDECREF(server);
    return tags;
}

/* A value the SDK's attribute cleaning keeps as it is (BoundedAttributes, no length limit). */
static int
plain_attribute(PyObject *key, PyObject *value)
{
    return PyUnicode_CheckExact(key) && PyUnicode_GET_LENGTH(key) > 0
           && (PyUnicode_CheckExact(value) || PyBool_Check(value) || PyLong_CheckExact(value)
               || PyFloat_CheckExact(value));
}

/* TimerSpan.attributes_with({}) for a span whose changes only set attributes of plain values
 * (a new dict), or NULL: with an error set, or none where the Python code must (another
 * change: a name, a status, an event; a value the SDK would clean). */
static PyObject *
merged_attributes(PyObject *start, PyObject *changes)
{
    if (!PyList_CheckExact(changes) || !(start == Py_None || PyDict_CheckExact(start)))
        return NULL;
    PyObject *merged = start == Py_None ? PyDict_New() : PyDict_Copy(start);
    if (merged == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(changes); i++) {
        PyObject *change = PyList_GET_ITEM(changes, i);
        if (!PyTuple_CheckExact(change) || PyTuple_GET_SIZE(change) != 3
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(change, 0))
            || !PyTuple_CheckExact(PyTuple_GET_ITEM(change, 1)))
            goto other;
        PyObject *method = PyTuple_GET_ITEM(change, 0), *args = PyTuple_GET_ITEM(change, 1);
        if (PyUnicode_CompareWithASCIIString(method, "set_attribute") == 0) {
            if (PyTuple_GET_SIZE(args) != 2
                || !plain_attribute(PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1)))
                goto other;
            if (PyDict_SetItem(merged, PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1)) < 0)
                goto other;
        }
        else if (PyUnicode_CompareWithASCIIString(method, "set_attributes") == 0) {
            if (PyTuple_GET_SIZE(args) != 1 || !PyDict_CheckExact(PyTuple_GET_ITEM(args, 0)))
                goto other;
            PyObject *given = PyTuple_GET_ITEM(args, 0), *key, *value;
            Py_ssize_t position = 0;
            while (PyDict_Next(given, &position, &key, &value))
                if (!plain_attribute(key, value))
                    goto other;
            if (PyDict_Update(merged, given) < 0)
                goto other;
        }
        else
            goto other;
    }
    return merged;
other: /* (an error set by a failed insertion, or none) */
    Py_DECREF(merged);
    return NULL;
}

/* The name of the instrumentation scope of another instrumentation's span (a new reference),
 * as closing.fold_timers reads it: span.tracer._instrumentation_scope.name. */
static PyObject *
scope_name(PyObject *span)
{
    PyObject *tracer = PyObject_GetAttrString(span, "tracer");
    if (tracer == NULL)
        return NULL;
    PyObject *scope = PyObject_GetAttrString(tracer, "_instrumentation_scope");
    Py_DECREF(tracer);
    if (scope == NULL)
        return NULL;
    /* (its slot, where the SDK has one: `name` is a property, Python code) */
    PyObject *name = PyObject_GetAttrString(scope, "_name");
    if (name == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        name = PyObject_GetAttrString(scope, "name");
    }
    Py_DECREF(scope);
    return name;
}

/* Whether a query's span and the last "db" timer's, a query's span of the same parent (its
 * sibling), are one query seen by two instrumentations, as closing._same_query decides: the
 * same statement (or either without one), of two instrumentation scopes. 1, 0, or -1 with an
 * error set (the caller leaves the request to the Python code). */
static int
same_query_beside(FoldState *state, PyObject *span, int foreign, PyObject *statement)
{
    if (state->pending_statement != NULL && statement != NULL) {
        int equal = PyObject_RichCompareBool(state->pending_statement, statement, Py_EQ);
        if (equal <= 0)
            return equal;
    }
    if (state->last_span == NULL)
        return 0;
    if ((Py_TYPE(state->last_span) == F.foreign_span) != foreign)
        return 1; /* otel_bridge's timer and another instrumentation's span */
    if (!foreign)
        return 0; /* two of otel_bridge's timers: one scope */
    PyObject *last = scope_name(state->last_span);
    if (last == NULL)
        return -1;
    PyObject *this = scope_name(span);
    if (this == NULL) {
        Py_DECREF(last);
        return -1;
    }
    int same = PyObject_RichCompareBool(last, this, Py_EQ);
    Py_DECREF(last);
    Py_DECREF(this);
    return same < 0 ? -1 : !same;
}

/* The record's Timer for one span, as child_spans.timer_of (or foreign_timer, for another
 * instrumentation's query) makes it: NULL with no error set where the Python code must (a
 * changed span, an unusual one, new tags). */
static PyObject *
fold_one(PyObject *span, long long request_start, FoldState *state)
{
    PyObject *result = NULL, *changes = NULL, *kind = NULL, *attributes = NULL, *given = NULL,
             *kept = NULL;
    PyObject *start = NULL, *end = NULL, *error = NULL, *name = NULL, *user = NULL,
             *system = NULL, *offset = NULL, *duration = NULL;
    PyObject *tags, *timer_kind, *statement = NULL;
    int query = 0;
    /* Another instrumentation's span (child_spans.foreign_timer): here when it is a query's. */
    int foreign = Py_TYPE(span) == F.foreign_span;
    if ((changes = fold_slot(span, SLOT_CHANGES)) == NULL
        || (kind = fold_slot(span, SLOT_KIND)) == NULL
        || (attributes = fold_slot(span, SLOT_START_ATTRIBUTES)) == NULL
        || (name = fold_slot(span, SLOT_NAME)) == NULL)
        goto done;
    int changed = PyObject_IsTrue(changes);
    if (changed > 0 && foreign) {
        /* Attributes set after the start (dbapi's instrumentation sets all of psycopg's so):
         * the ones the span ends with (TimerSpan.attributes_with). */
        PyObject *merged = merged_attributes(attributes, changes);
        if (merged == NULL)
            goto done; /* (an error set, or the Python code's case) */
        Py_SETREF(attributes, merged);
        changed = 0;
    }
    if (changed != 0 || !PyDict_CheckExact(attributes))
        goto done; /* (-1: the error stays set) */
    if (kind == F.client || foreign) {
        /* A query's span (Django's, the driver's), tagged as every instrumentation's query is. */
        int database = PyDict_Contains(attributes, F.keys[KEY_SYSTEM_NAME]);
        if (database == 0)
            database = PyDict_Contains(attributes, F.keys[KEY_SYSTEM]);
        if (database <= 0)
            goto done; /* (another client span: the Python code's) */
        tags = query_tags(name, attributes, &statement); /* (new references) */
        if (tags == NULL)
            goto done;
        timer_kind = F.db;
        query = 1;
    }
    else {
        if (kind != F.internal)
            goto done;
        int has_error_type = PyDict_Contains(attributes, F.error_type);
        if (has_error_type != 0)
            goto done;
        /* tuple(attributes.items()) */
        if ((given = PyTuple_New(PyDict_GET_SIZE(attributes))) == NULL)
            goto done;
        Py_ssize_t position = 0, index = 0;
        PyObject *key, *value;
        while (PyDict_Next(attributes, &position, &key, &value)) {
            if (index >= PyTuple_GET_SIZE(given))
                goto done; /* changed meanwhile */
            Py_INCREF(key); /* (an allocation may run Python code) */
            Py_INCREF(value);
            PyObject *pair = PyTuple_Pack(2, key, value);
            Py_DECREF(key);
            Py_DECREF(value);
            if (pair == NULL)
                goto done;
            PyTuple_SET_ITEM(given, index++, pair);
        }
        if (index != PyTuple_GET_SIZE(given))
            goto done;
        kept = Py_XNewRef(PyDict_GetItemWithError(F.given, given));
        if (kept == NULL) {
            if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_TypeError))
                PyErr_Clear(); /* a value a sampler gave as a list */
            goto done;
        }
        if (!PyTuple_CheckExact(kept) || PyTuple_GET_SIZE(kept) != 2)
            goto done;
        tags = Py_NewRef(PyTuple_GET_ITEM(kept, 0));
        timer_kind = PyTuple_GET_ITEM(kept, 1);
    }
    if ((start = fold_slot(span, SLOT_START_TIME)) == NULL
        || (end = fold_slot(span, SLOT_END_TIME)) == NULL
        || (error = fold_slot(span, SLOT_ERROR)) == NULL
        || (user = fold_slot(span, SLOT_CPU_USER)) == NULL
        || (system = fold_slot(span, SLOT_CPU_SYSTEM)) == NULL)
        goto release;
    if (!PyLong_CheckExact(start) || (end != Py_None && !PyLong_CheckExact(end)))
        goto release;
    if (foreign && error != Py_None)
        goto release; /* (its status is in its changes: the Python code reads those) */
    int overflow;
    long long started = PyLong_AsLongLongAndOverflow(start, &overflow);
    if (overflow || (started == -1 && PyErr_Occurred()))
        goto clear;
    long long ended = started;
    if (end != Py_None) {
        ended = PyLong_AsLongLongAndOverflow(end, &overflow);
        if (overflow || (ended == -1 && PyErr_Occurred()))
            goto clear;
        if (ended == 0)
            ended = started; /* (span.end_time or start) */
    }
    if (started > LLONG_MAX / 4 || started < LLONG_MIN / 4 || ended > LLONG_MAX / 4
        || ended < LLONG_MIN / 4 || request_start > LLONG_MAX / 4 || request_start < LLONG_MIN / 4)
        goto release;
    long long since = started - request_start, lasted = ended - started;
    since = since > 0 ? since : 0;
    lasted = lasted > 0 ? lasted : 0;
    /* A "db" timer: the Python code orders them when one starts before another has ended
     * (nested queries, an app's timer(group="db") around one). */
    if (query
        || (PyUnicode_Check(timer_kind) && PyUnicode_CompareWithASCIIString(timer_kind, "db") == 0)) {
        /* An app's timer(group="db") with a database system among its tags counts as a query
         * in the Python code: there, then. */
        if (!query && (PyDict_Contains(attributes, F.keys[KEY_SYSTEM_NAME]) != 0
                       || PyDict_Contains(attributes, F.keys[KEY_SYSTEM]) != 0))
            goto release; /* (-1: the error stays set) */
        unsigned long long id = 0, parent_id = 0;
        int ids = query ? span_ids(span, foreign, &id, &parent_id) : 0;
        if (ids < 0 || (query && ids == 0))
            goto release; /* (ids of another shape: the Python code reads them, or raises) */
        long long finish = since + lasted;
        /* This query's span holds the last one, and nothing else: its child, or another
         * instrumentation's span of the same query beside it, is the same query seen from
         * inside (the Python fold's stack, in this one case). */
        int holds = state->any_db && since <= state->last_end && query && state->last_query
                    && !state->last_holds
                    && (!state->group_before || state->before_end < since)
                    && (since < state->last_since
                        || (since == state->last_since && lasted > state->last_lasted))
                    && finish >= state->last_since + state->last_lasted;
        if (holds && state->last_parent != id) {
            holds = state->last_parent == parent_id
                        ? same_query_beside(state, span, foreign, statement)
                        : 0;
            if (holds < 0) {
                PyErr_Clear(); /* (a scope of another shape: the Python code reads it, or raises) */
                goto release;
            }
        }
        if (holds) {
            if (state->inner == NULL
                && (state->inner = PyMem_Calloc(state->size, 1)) == NULL) {
                PyErr_NoMemory();
                goto release;
            }
            state->inner[state->last_index] = 1;
            state->pending = 0; /* the inner span is not counted */
            Py_CLEAR(state->pending_statement);
        }
        else {
            if (state->any_db && since <= state->last_end)
                state->overlap = 1;
            if (count_pending(state) < 0 || PyErr_Occurred())
                goto release;
            state->group_before = state->any_db;
            state->before_end = state->last_end;
        }
        if (!state->any_db || finish > state->last_end)
            state->last_end = finish;
        state->any_db = 1;
        state->last_index = state->index;
        state->last_since = since;
        state->last_lasted = lasted;
        state->last_query = query;
        state->last_holds = holds;
        state->last_parent = parent_id;
        Py_XSETREF(state->last_span, Py_NewRef(span));
        if (query) {
            state->pending = 1;
            state->pending_statement = statement; /* (NULL for a "connect") */
            statement = NULL;
            state->pending_lasted = lasted;
        }
    }
    if (query)
        state->any_query = 1;
    if ((offset = PyLong_FromLongLong(since)) == NULL
        || (duration = PyLong_FromLongLong(lasted)) == NULL)
        goto release;
    PyObject *error_type = Py_None;
    if (error != Py_None) {
        if (!PyTuple_Check(error) || PyTuple_GET_SIZE(error) < 1)
            goto release;
        error_type = PyTuple_GET_ITEM(error, 0);
    }
    /* tuple.__new__(Timer, fields), in field order (record.Timer). */
    PyObject *fields[9] = {name, timer_kind, tags, offset, duration, user, system, error_type,
                           NULL};
    PyObject *one = PyLong_FromLong(1);
    if (one == NULL)
        goto release;
    fields[8] = one;
    result = new_tuple_of(F.timer, fields, 9);
    if (result != NULL) /* Immutable, of strs, ints and tags made before it: never in a cycle. */
        PyObject_GC_UnTrack(result);
    Py_DECREF(one);
    goto release;
clear:
    PyErr_Clear();
release:
    Py_DECREF(tags);
    Py_XDECREF(statement);
done:
    Py_XDECREF(changes);
    Py_XDECREF(kind);
    Py_XDECREF(attributes);
    Py_XDECREF(given);
    Py_XDECREF(start);
    Py_XDECREF(end);
    Py_XDECREF(error);
    Py_XDECREF(name);
    Py_XDECREF(user);
    Py_XDECREF(system);
    Py_XDECREF(offset);
    Py_XDECREF(duration);
    Py_XDECREF(kept);
    return result;
}

/* _timer_spans.export_timer_spans(spans, timing): each of a request's timers' spans (a
 * TimerSpan, or a subclass: another instrumentation's) closed, and handed to `_export` where
 * it has processors to go to. */
static PyObject *
close_timer_spans(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "close_timer_spans(spans, timing)");
        return NULL;
    }
    if (!F.ready || F.export == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_fold() was not called");
        return NULL;
    }
    PyObject *spans = PySequence_Fast(args[0], "close_timer_spans(): spans is no sequence");
    if (spans == NULL)
        return NULL;
    PyObject *closed = PyTuple_GET_ITEM(F.slots, SLOT_CLOSED);
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(spans); i++) {
        PyObject *span = Py_NewRef(PySequence_Fast_GET_ITEM(spans, i));
        int failed = 0;
        if (PyObject_TypeCheck(span, F.timer_span)) {
            PyObject *exporters = NULL;
            int some = 0;
            failed = Py_TYPE(closed)->tp_descr_set(closed, span, Py_True) < 0
                     || (exporters = fold_slot(span, SLOT_EXPORTERS)) == NULL
                     || (some = PyObject_IsTrue(exporters)) < 0;
            Py_XDECREF(exporters);
            if (!failed && some) {
                PyObject *call[2] = {span, args[1]};
                PyObject *export = PyObject_GetAttrString(F.export, "_export");
                PyObject *done = export != NULL ? PyObject_Vectorcall(export, call, 2, NULL) : NULL;
                failed = done == NULL;
                Py_XDECREF(export);
                Py_XDECREF(done);
            }
        }
        Py_DECREF(span);
        if (failed) {
            Py_DECREF(spans);
            return NULL;
        }
    }
    Py_DECREF(spans);
    Py_RETURN_NONE;
}

/* _database.QueryCounts of the request's queries, its slots set as its __init__ and add() set
 * them (a new reference). */
static PyObject *
query_counts(FoldState *state)
{
    PyObject *counts = F.counts->tp_alloc(F.counts, 0);
    if (counts == NULL)
        return NULL;
    long long values[3] = {state->count, state->duplicates, state->nanoseconds};
    for (int i = 0; i < 3; i++) {
        PyObject *value = PyLong_FromLongLong(values[i]);
        PyObject *descr = PyTuple_GET_ITEM(F.count_slots, i);
        int failed = value == NULL || Py_TYPE(descr)->tp_descr_set(descr, counts, value) < 0;
        Py_XDECREF(value);
        if (failed) {
            Py_DECREF(counts);
            return NULL;
        }
    }
    PyObject *descr = PyTuple_GET_ITEM(F.count_slots, 3);
    if (Py_TYPE(descr)->tp_descr_set(descr, counts, state->seen) < 0) {
        Py_DECREF(counts);
        return NULL;
    }
    return counts;
}

static void
fold_state_clear(FoldState *state)
{
    Py_CLEAR(state->seen);
    Py_CLEAR(state->pending_statement);
    Py_CLEAR(state->last_span);
    PyMem_Free(state->inner);
    state->inner = NULL;
}

static PyObject *
fold_timers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "fold_timers(spans, start)");
        return NULL;
    }
    PyObject *spans = args[0];
    FoldState state = {0};
    PyObject *timers = NULL;
    if (!F.ready || !(PyList_CheckExact(spans) || PyTuple_CheckExact(spans))
        || !PyLong_CheckExact(args[1]))
        goto slow;
    int overflow;
    long long start = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (overflow || (start == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        goto slow;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(spans);
    state.size = count;
    if ((timers = PyTuple_New(count)) == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *span = Py_NewRef(PySequence_Fast_GET_ITEM(spans, i));
        state.index = i;
        PyTypeObject *type = Py_TYPE(span);
        PyObject *timer = type == F.timer_span || type == F.foreign_span
                              ? fold_one(span, start, &state)
                              : NULL;
        Py_DECREF(span);
        if (timer == NULL)
            goto fail;
        PyTuple_SET_ITEM(timers, i, timer);
        if (PySequence_Fast_GET_SIZE(spans) != count) /* (a request still running) */
            goto fail;
    }
    if (state.any_query && state.overlap) /* nested queries: which one stands, in Python */
        goto fail;
    if (count_pending(&state) < 0)
        goto fail;
    if (state.inner != NULL) { /* without the spans held by their query's */
        Py_ssize_t kept = 0;
        for (Py_ssize_t i = 0; i < count; i++)
            kept += !state.inner[i];
        PyObject *outer = PyTuple_New(kept);
        if (outer == NULL)
            goto fail;
        for (Py_ssize_t i = 0, j = 0; i < count; i++)
            if (!state.inner[i])
                PyTuple_SET_ITEM(outer, j++, Py_NewRef(PyTuple_GET_ITEM(timers, i)));
        Py_SETREF(timers, outer);
    }
    PyObject_GC_UnTrack(timers); /* of untracked timers only */
    PyObject *counts = state.count > 0 ? query_counts(&state) : Py_NewRef(Py_None);
    fold_state_clear(&state);
    if (counts == NULL) {
        Py_DECREF(timers);
        return NULL;
    }
    PyObject *result = PyTuple_Pack(2, timers, counts);
    Py_DECREF(timers);
    Py_DECREF(counts);
    return result;
fail: /* an error, or the Python code's case */
    Py_XDECREF(timers);
    fold_state_clear(&state);
    if (PyErr_Occurred())
        return NULL;
slow:
    if (F.fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_fold() was not called");
        return NULL;
    }
    return PyObject_Vectorcall(F.fallback, args, nargs, NULL);
}

/* A QueryCounts slot (0 count, 1 duplicates, 2 nanoseconds) as a C integer: 1, or 0 where
 * the Python code must (not a plain int, or no value yet), -1 on error. */
static int
count_slot(PyObject *counts, int slot, long long *value)
{
    PyObject *descr = PyTuple_GET_ITEM(F.count_slots, slot);
    PyObject *found = Py_TYPE(descr)->tp_descr_get(descr, counts, (PyObject *)Py_TYPE(counts));
    if (found == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    int overflow = 0;
    *value = PyLong_CheckExact(found) ? PyLong_AsLongLongAndOverflow(found, &overflow) : 0;
    int plain = PyLong_CheckExact(found) && !overflow;
    Py_DECREF(found);
    if (*value == -1 && PyErr_Occurred())
        return -1;
    return plain;
}

/* QueryCounts.fields(counts, dropped, dropped_ns): here for one of plain ints. */
static PyObject *
query_fields(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "query_fields(counts, dropped, dropped_ns)");
        return NULL;
    }
    if (!F.ready || F.figures == NULL || Py_TYPE(args[0]) != F.counts
        || !PyLong_CheckExact(args[1]) || !PyLong_CheckExact(args[2]))
        goto slow;
    long long count, duplicates, nanoseconds, dropped, dropped_ns = 0;
    int overflow = 0, plain;
    if ((plain = count_slot(args[0], 0, &count)) <= 0
        || (plain = count_slot(args[0], 1, &duplicates)) <= 0
        || (plain = count_slot(args[0], 2, &nanoseconds)) <= 0) {
        if (plain < 0)
            return NULL;
        goto slow;
    }
    dropped = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (!overflow)
        dropped_ns = PyLong_AsLongLongAndOverflow(args[2], &overflow);
    if (PyErr_Occurred())
        return NULL;
    /* int / float: the int made a double, exactly below 2**53. */
    if (overflow || __builtin_add_overflow(count, dropped, &count)
        || __builtin_add_overflow(nanoseconds, dropped_ns, &nanoseconds)
        || nanoseconds > (1LL << 53) || nanoseconds < -(1LL << 53))
        goto slow;
    double milliseconds;
    if (!round_3((double)nanoseconds / 1e6, &milliseconds))
        return NULL;
    PyObject *values[3] = {PyLong_FromLongLong(count), PyFloat_FromDouble(milliseconds),
                           PyLong_FromLongLong(duplicates)};
    PyObject *made = NULL;
    if (values[0] != NULL && values[1] != NULL && values[2] != NULL
        && (made = PyDict_New()) != NULL) {
        for (int i = 0; i < 3; i++)
            if (PyDict_SetItem(made, PyTuple_GET_ITEM(F.figures, i), values[i]) < 0) {
                Py_CLEAR(made);
                break;
            }
    }
    for (int i = 0; i < 3; i++)
        Py_XDECREF(values[i]);
    return made;
slow:
    if (F.fields == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "setup_fold() was not called");
        return NULL;
    }
    return PyObject_Vectorcall(F.fields, args, nargs, NULL);
}

static PyObject *
setup_fold(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"timer_span", "foreign_span", "timer", "slots", "internal",
                            "client", "given", "db_tags", "counts", "count_slots",
                            "max_statements", "figures", "fields", "export", "fallback", NULL};
    PyObject *timer_span, *foreign_span, *timer, *slots, *internal, *client, *given, *db_tags,
        *counts, *count_slots, *figures, *fields, *export, *fallback;
    Py_ssize_t max_statements;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!O!O!O!OOO!O!O!O!nO!OOO", names,
                                     &PyType_Type, &timer_span, &PyType_Type, &foreign_span,
                                     &PyType_Type, &timer, &PyTuple_Type, &slots,
                                     &internal, &client, &PyDict_Type, &given, &PyDict_Type,
                                     &db_tags, &PyType_Type, &counts, &PyTuple_Type,
                                     &count_slots, &max_statements, &PyTuple_Type, &figures,
                                     &fields, &export, &fallback))
        return NULL;
    if (PyTuple_GET_SIZE(slots) != SLOT_COUNT || PyTuple_GET_SIZE(count_slots) != 4
        || PyTuple_GET_SIZE(figures) != 3
        || !PyType_IsSubtype((PyTypeObject *)timer, &PyTuple_Type)
        || !PyType_IsSubtype((PyTypeObject *)foreign_span, (PyTypeObject *)timer_span)) {
        PyErr_SetString(PyExc_ValueError, "setup_fold(): unexpected slots or Timer type");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 4; i++)
        if (Py_TYPE(PyTuple_GET_ITEM(count_slots, i))->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_ValueError, "setup_fold(): count_slots are no descriptors");
            return NULL;
        }
    F.ready = 0;
    Py_XSETREF(F.timer_span, (PyTypeObject *)Py_NewRef(timer_span));
    Py_XSETREF(F.foreign_span, (PyTypeObject *)Py_NewRef(foreign_span));
    Py_XSETREF(F.timer, (PyTypeObject *)Py_NewRef(timer));
    Py_XSETREF(F.slots, Py_NewRef(slots));
    Py_XSETREF(F.internal, Py_NewRef(internal));
    Py_XSETREF(F.client, Py_NewRef(client));
    Py_XSETREF(F.given, Py_NewRef(given));
    Py_XSETREF(F.db_tags, Py_NewRef(db_tags));
    Py_XSETREF(F.counts, (PyTypeObject *)Py_NewRef(counts));
    Py_XSETREF(F.count_slots, Py_NewRef(count_slots));
    Py_XSETREF(F.fallback, Py_NewRef(fallback));
    Py_XSETREF(F.figures, Py_NewRef(figures));
    Py_XSETREF(F.fields, Py_NewRef(fields));
    Py_XSETREF(F.export, Py_NewRef(export));
    F.max_statements = max_statements;
    if (F.error_type == NULL && (F.error_type = PyUnicode_InternFromString("error.type")) == NULL)
        return NULL;
    if (F.db == NULL && (F.db = PyUnicode_InternFromString("db")) == NULL)
        return NULL;
    if (F.query == NULL && (F.query = PyUnicode_InternFromString("query")) == NULL)
        return NULL;
    for (int i = 0; i < 8; i++)
        if (F.keys[i] == NULL && (F.keys[i] = PyUnicode_InternFromString(key_names[i])) == NULL)
            return NULL;
    F.ready = 1;
    Py_RETURN_NONE;
}

/* ---- A Pinba packet's timer fields (otel_bridge.exporters.pinba), as PinbaExporter._timers
 * and PacketEncoder._timer_fields make them: timers in start order, the same tag sets merged,
 * times in whole microseconds. */

static struct {
    int ready;
    Py_ssize_t tags, start, duration, utime, stime, hits; /* Timer's indices */
} P;

typedef struct {
    long long start;
    Py_ssize_t index;
} Started;

static int
by_start(const void *a, const void *b)
{
    const Started *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* (sorted() is stable) */
}

/* A Timer's field as a C integer, 1; 0 where the Python code must (not a plain int, or
 * negative, whose floor division C's would not match). */
static int
timer_integer(PyObject *timer, Py_ssize_t index, long long *value)
{
    PyObject *found = PyTuple_GET_ITEM(timer, index);
    if (!PyLong_CheckExact(found))
        return 0;
    int overflow;
    *value = PyLong_AsLongLongAndOverflow(found, &overflow);
    if (overflow || *value < 0) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

static Py_ssize_t
put_varint(unsigned char *out, unsigned long long value)
{
    Py_ssize_t used = 0;
    while (value > 0x7F) {
        out[used++] = (unsigned char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    out[used++] = (unsigned char)value;
    return used;
}

/* A float32 field: its key's bytes, then the value as struct.pack("<f") packs it. */
static int
put_float32(unsigned char *out, Py_ssize_t *used, const char *key, int key_size, double value)
{
    memcpy(out + *used, key, key_size);
    *used += key_size;
#if PY_VERSION_HEX < 0x030B0000
    if (_PyFloat_Pack4(value, out + *used, 1) < 0)
#else
    if (PyFloat_Pack4(value, (char *)(out + *used), 1) < 0)
#endif
        return 0;
    *used += 4;
    return 1;
}

/* pinba_timers(timers, cache): (the merged timers' tags, the bytes of their hits and values,
 * the bytes of their CPU times), or None where the Python code must (tags not in `cache`, the
 * exporter's raw tags -> Pinba tags, yet; numbers it alone handles). */
static PyObject *
pinba_timers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "pinba_timers(timers, cache)");
        return NULL;
    }
    PyObject *timers = args[0], *cache = args[1];
    if (!P.ready || !PyTuple_CheckExact(timers) || !PyDict_CheckExact(cache)
        || PyTuple_GET_SIZE(timers) == 0 || PyTuple_GET_SIZE(timers) > 1000000)
        Py_RETURN_NONE;
    Py_ssize_t count = PyTuple_GET_SIZE(timers), merged = 0;
    PyObject *result = NULL, *groups = NULL, *shape = NULL, *front = NULL, *back = NULL;
    Started *order = PyMem_Malloc(count * sizeof(Started));
    long long *sums = PyMem_Malloc(count * 4 * sizeof(long long)); /* value, hits, utime, stime */
    PyObject **tags = PyMem_Calloc(count, sizeof(PyObject *));
    if (order == NULL || sums == NULL || tags == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t needed = (P.tags > P.start ? P.tags : P.start);
    needed = needed > P.duration ? needed : P.duration;
    needed = needed > P.utime ? needed : P.utime;
    needed = needed > P.stime ? needed : P.stime;
    needed = needed > P.hits ? needed : P.hits;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *timer = PyTuple_GET_ITEM(timers, i);
        if (!PyTuple_Check(timer) || PyTuple_GET_SIZE(timer) <= needed)
            goto python;
        PyObject *started = PyTuple_GET_ITEM(timer, P.start);
        int overflow;
        order[i].start = PyLong_CheckExact(started)
                             ? PyLong_AsLongLongAndOverflow(started, &overflow)
                             : (overflow = 1, 0);
        if (overflow)
            goto python;
        order[i].index = i;
    }
    if (count > 1) {
        qsort(order, count, sizeof(Started), by_start);
        if ((groups = PyDict_New()) == NULL)
            goto done;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *timer = PyTuple_GET_ITEM(timers, order[n].index);
        long long duration, utime, stime, hits;
        if (!timer_integer(timer, P.duration, &duration) || !timer_integer(timer, P.utime, &utime)
            || !timer_integer(timer, P.stime, &stime) || !timer_integer(timer, P.hits, &hits))
            goto python;
        PyObject *pinba = PyDict_GetItemWithError(cache, PyTuple_GET_ITEM(timer, P.tags));
        if (pinba == NULL) {
            PyErr_Clear(); /* (an unhashable tag: the Python code says so) */
            goto python;
        }
        Py_ssize_t at = merged;
        if (groups != NULL) {
            PyObject *known = PyDict_GetItemWithError(groups, pinba);
            if (known != NULL)
                at = PyLong_AsSsize_t(known);
            else if (PyErr_Occurred())
                goto done;
        }
        long long values[4] = {duration / 1000, hits, utime / 1000, stime / 1000};
        if (at == merged) {
            tags[merged] = Py_NewRef(pinba);
            for (int k = 0; k < 4; k++)
                sums[merged * 4 + k] = values[k];
            merged++;
            if (groups != NULL) {
                PyObject *index = PyLong_FromSsize_t(at);
                int failed = index == NULL || PyDict_SetItem(groups, pinba, index) < 0;
                Py_XDECREF(index);
                if (failed)
                    goto done;
            }
        }
        else {
            for (int k = 0; k < 4; k++)
                if (__builtin_add_overflow(sums[at * 4 + k], values[k], &sums[at * 4 + k]))
                    goto python;
        }
    }
    /* Each merged timer: its hit count (field 10, a varint), then each one's value (field 11,
     * a float32); after the rest of the packet, each one's user CPU (field 22), then each
     * one's system CPU (23), zeros unless one was measured. */
    if ((shape = PyTuple_New(merged)) == NULL
        || (front = PyBytes_FromStringAndSize(NULL, merged * (1 + 10 + 5))) == NULL
        || (back = PyBytes_FromStringAndSize(NULL, merged * 12)) == NULL)
        goto done;
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(front);
    Py_ssize_t used = 0;
    int measured = 0;
    for (Py_ssize_t m = 0; m < merged; m++) {
        PyTuple_SET_ITEM(shape, m, tags[m]);
        tags[m] = NULL;
        long long hits = sums[m * 4 + 1];
        out[used++] = 0x50;
        used += put_varint(out + used, hits < 1 ? 1 : hits > 0xFFFFFFFFLL ? 0xFFFFFFFFLL : hits);
        if (sums[m * 4 + 2] || sums[m * 4 + 3])
            measured = 1;
    }
    for (Py_ssize_t m = 0; m < merged; m++)
        if (!put_float32(out, &used, "\x5d", 1, (double)sums[m * 4] / 1e6))
            goto done;
    if (_PyBytes_Resize(&front, used) < 0)
        goto done;
    out = (unsigned char *)PyBytes_AS_STRING(back);
    used = 0;
    for (int field = 0; field < 2; field++)
        for (Py_ssize_t m = 0; m < merged; m++) {
            double value = measured ? (double)sums[m * 4 + 2 + field] / 1e6 : 0.0;
            if (!put_float32(out, &used, field == 0 ? "\xb5\x01" : "\xbd\x01", 2, value))
                goto done;
        }
    result = PyTuple_Pack(3, shape, front, back);
    goto done;
python:
    result = Py_NewRef(Py_None);
done:
    if (tags != NULL)
        for (Py_ssize_t m = 0; m < count; m++)
            Py_XDECREF(tags[m]);
    PyMem_Free(order);
    PyMem_Free(sums);
    PyMem_Free(tags);
    Py_XDECREF(groups);
    Py_XDECREF(shape);
    Py_XDECREF(front);
    Py_XDECREF(back);
    return result;
}

static PyObject *
setup_pinba(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"tags", "start", "duration", "utime", "stime", "hits", NULL};
    Py_ssize_t tags, start, duration, utime, stime, hits;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$nnnnnn", names, &tags, &start, &duration,
                                     &utime, &stime, &hits))
        return NULL;
    if (tags < 0 || start < 0 || duration < 0 || utime < 0 || stime < 0 || hits < 0) {
        PyErr_SetString(PyExc_ValueError, "setup_pinba(): negative index");
        return NULL;
    }
    P.tags = tags;
    P.start = start;
    P.duration = duration;
    P.utime = utime;
    P.stime = stime;
    P.hits = hits;
    P.ready = 1;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"setup_queries", (PyCFunction)(void (*)(void))setup_queries, METH_VARARGS | METH_KEYWORDS,
     "Hand the module the query_timer type new_query_timer makes."},
    {"new_query_timer", (PyCFunction)(void (*)(void))new_query_timer, METH_FASTCALL,
     "query_timer(name, attributes), as its __init__ makes it."},
    {"setup_pinba", (PyCFunction)(void (*)(void))setup_pinba, METH_VARARGS | METH_KEYWORDS,
     "Hand the module the Timer's field indices pinba_timers reads."},
    {"pinba_timers", (PyCFunction)(void (*)(void))pinba_timers, METH_FASTCALL,
     "A Pinba packet's timer fields (as PinbaExporter._timers and the encoder)."},
    {"setup", (PyCFunction)(void (*)(void))setup, METH_VARARGS | METH_KEYWORDS,
     "Hand the module the Python objects the fast path works with."},
    {"setup_views", (PyCFunction)(void (*)(void))setup_views, METH_VARARGS | METH_KEYWORDS,
     "Hand the module what the views' functions work with."},
    {"setup_fold", (PyCFunction)(void (*)(void))setup_fold, METH_VARARGS | METH_KEYWORDS,
     "Hand the module what fold_timers works with."},
    {"fold_timers", (PyCFunction)(void (*)(void))fold_timers, METH_FASTCALL,
     "A request's timers from its spans (as closing.fold_timers)."},
    {"timers_text", (PyCFunction)timers_text, METH_O,
     "The wide event's timer summary of a record (as _timers_text)."},
    {"figures_text", (PyCFunction)figures_text, METH_O,
     "The wide event's database figures (as _figures_text)."},
    {"close_timer_spans", (PyCFunction)(void (*)(void))close_timer_spans, METH_FASTCALL,
     "A request's timers' spans closed and exported (as export_timer_spans)."},
    {"query_fields", (PyCFunction)(void (*)(void))query_fields, METH_FASTCALL,
     "A request's database figures (as QueryCounts.fields)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "otel_bridge._speedups",
    "The hot path of otel_bridge.timer() in C (see _speedups.c).", -1, module_methods,
};

#define INTERN(var, text)                                        \
    if ((var = PyUnicode_InternFromString(text)) == NULL)        \
        return NULL

PyMODINIT_FUNC
PyInit__speedups(void)
{
    /* Its state is the process's: the main interpreter's only (elsewhere, the Python code). */
    if (PyInterpreterState_Get() != PyInterpreterState_Main()) {
        PyErr_SetString(PyExc_ImportError,
                        "otel_bridge._speedups is for the main interpreter only");
        return NULL;
    }
    INTERN(str_span, "span");
    INTERN(str_closed, "closed");
    INTERN(str_bridge, "bridge");
    INTERN(str_timer_plan, "timer_plan");
    INTERN(str_max_attributes, "max_attributes");
    INTERN(str_fast, "fast");
    INTERN(str_exporters, "exporters");
    INTERN(str_context, "_context");
    INTERN(str_open_spans, "open_spans");
    INTERN(str_spans, "spans");
    INTERN(str_max_timers, "max_timers");
    INTERN(str_qualname, "__qualname__");
    INTERN(str_name, "name");
    INTERN(str_space, " ");
    INTERN(str_timer, "timer");
    if ((int_64 = PyLong_FromLong(64)) == NULL || (int_zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    if (PyType_Ready(&TimerCoreType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "TimerCore", (PyObject *)&TimerCoreType) < 0
        || PyModule_AddIntConstant(module, "VERSION", SPEEDUPS_VERSION) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
