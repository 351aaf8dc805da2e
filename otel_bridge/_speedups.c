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
#define SPEEDUPS_VERSION 1

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

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
} TimerCore;

static int
set_slot(PyObject *span, int slot, PyObject *value)
{
    PyObject *descr = PyTuple_GET_ITEM(S.slots, slot);
    return Py_TYPE(descr)->tp_descr_set(descr, span, value);
}

static PyObject *
get_slot(PyObject *span, int slot)
{
    PyObject *descr = PyTuple_GET_ITEM(S.slots, slot);
    return Py_TYPE(descr)->tp_descr_get(descr, span, (PyObject *)Py_TYPE(span));
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
    PyObject *token = NULL;

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
    long max_attributes = PyLong_AsLong(limit);
    if (count < 0 || (max_attributes == -1 && PyErr_Occurred()))
        goto error;
    if (count >= max_attributes)
        goto done;
    if ((exporters = PyObject_GetAttr(server, str_exporters)) == NULL)
        goto error;

    /* The parent: the current span, when it is one of ours. */
    if (PyContextVar_Get(S.context_var, NULL, &values) < 0)
        goto error;
    if (values == NULL || !PyDict_Check(values))
        goto done;
    PyObject *current = PyDict_GetItemWithError(values, S.span_key); /* borrowed */
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
    context = S.span_context->tp_alloc(S.span_context, 6);
    if (context == NULL)
        goto error;
    PyObject *fields[6] = {trace_id, span_id, Py_False, PyTuple_GET_ITEM(S.flags, flags),
                           PyTuple_GET_ITEM(parent, 4), Py_True};
    for (int i = 0; i < 6; i++)
        PyTuple_SET_ITEM(context, i, Py_NewRef(fields[i]));
    if ((start = PyObject_CallNoArgs(S.wall_ns)) == NULL)
        goto error;

    /* The TimerSpan, its slots set as TimerSpan.__init__ sets them. */
    span = S.timer_span->tp_alloc(S.timer_span, 0);
    if (span == NULL)
        goto error;
    PyObject *kind = self->kind != NULL && self->kind != Py_None ? self->kind : S.internal;
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
    if ((opened = PyObject_GetAttr(builder, str_open_spans)) == NULL)
        goto error;
    if (opened == Py_None) {
        Py_DECREF(opened);
        if ((opened = PyDict_New()) == NULL
            || PyObject_SetAttr(builder, str_open_spans, opened) < 0)
            goto error;
    }
    if (!PyDict_CheckExact(opened)) {
        PyErr_SetString(PyExc_TypeError, "open_spans is not a dict");
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
    return result;
}

/* The fast path of finish_timer(): 1 done, 0 not applicable (the Python one runs), -1 error. */
static int
fast_finish(PyObject *builder, PyObject *span, PyObject *exc)
{
    int result = 0, check;
    PyObject *cpu = NULL, *bridge = NULL, *limit = NULL, *spans = NULL, *opened = NULL;
    PyObject *context = NULL, *end = NULL, *error = NULL;

    if ((cpu = get_slot(span, SLOT_CPU)) == NULL)
        goto error;
    if (cpu != Py_None)
        goto done; /* its CPU time is measured */
    if ((check = attr_is(builder, str_closed, Py_False)) <= 0)
        goto check_failed;
    if ((opened = PyObject_GetAttr(builder, str_open_spans)) == NULL)
        goto error;
    if (!PyDict_CheckExact(opened))
        goto done;
    if ((bridge = PyObject_GetAttr(builder, str_bridge)) == NULL
        || (limit = PyObject_GetAttr(bridge, str_max_timers)) == NULL
        || (spans = PyObject_GetAttr(builder, str_spans)) == NULL)
        goto error;
    Py_ssize_t max_timers = PyLong_AsSsize_t(limit);
    if (max_timers == -1 && PyErr_Occurred())
        goto error;
    if (spans == Py_None) {
        Py_DECREF(spans);
        if ((spans = PyList_New(0)) == NULL || PyObject_SetAttr(builder, str_spans, spans) < 0)
            goto error;
    }
    if (!PyList_CheckExact(spans) || PyList_GET_SIZE(spans) >= max_timers)
        goto done;

    /* Once: only the one that takes it out of the open spans goes on. */
    if ((context = get_slot(span, SLOT_CONTEXT)) == NULL)
        goto error;
    if (!PyTuple_Check(context) || PyTuple_GET_SIZE(context) < 2)
        goto done;
    PyObject *key = PyTuple_GET_ITEM(context, 1);
    PyObject *held = PyDict_GetItemWithError(opened, key); /* borrowed */
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
    if (PyList_Append(spans, span) < 0)
        goto done;
    result = 1;
    goto done;

check_failed:
    if (check < 0)
        goto error;
    goto done;
error:
    result = -1;
done:
    Py_XDECREF(cpu);
    Py_XDECREF(bridge);
    Py_XDECREF(limit);
    Py_XDECREF(spans);
    Py_XDECREF(opened);
    Py_XDECREF(context);
    Py_XDECREF(end);
    Py_XDECREF(error);
    return result;
}

static PyObject *
core_enter(TimerCore *self, PyObject *Py_UNUSED(ignored))
{
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
    return PyObject_CallOneArg(S.enter_slow, (PyObject *)self);
}

static PyObject *
core_exit(TimerCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (!S.ready || nargs != 3)
        goto slow;
    PyObject *span = self->span, *token = self->token;
    if (span == NULL || Py_TYPE(span) != S.timer_span || token == NULL || token == Py_None
        || S.context_var == NULL)
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
    PyObject *call[4] = {(PyObject *)self, NULL, NULL, NULL};
    for (Py_ssize_t i = 0; i < nargs && i < 3; i++)
        call[i + 1] = args[i];
    return PyObject_Vectorcall(S.exit_slow, call, nargs + 1 < 4 ? nargs + 1 : 4, NULL);
}

/* timer(**tags): every tag a string, the usual case, here; anything else in Python. */
static int
core_init(TimerCore *self, PyObject *args, PyObject *kwargs)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value, *tags = NULL, *name = NULL;
    if (!S.ready || PyTuple_GET_SIZE(args) != 0 || (kwargs != NULL && !PyDict_CheckExact(kwargs)))
        goto slow;
    if (kwargs != NULL) {
        while (PyDict_Next(kwargs, &pos, &key, &value))
            if (!PyUnicode_CheckExact(value))
                goto slow;
        tags = PyDict_Copy(kwargs); /* as **tags is: a dict of its own */
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
    else {
        PyObject *values = PyDict_Values(tags);
        if (values == NULL)
            goto error;
        name = PyUnicode_Join(str_space, values);
        Py_DECREF(values);
        if (name == NULL)
            goto error;
        if (PyUnicode_GET_LENGTH(name) == 0)
            Py_SETREF(name, Py_NewRef(str_timer));
    }
    Py_XSETREF(self->attributes, tags);
    Py_XSETREF(self->name, name);
    Py_XSETREF(self->span, Py_NewRef(Py_None));
    Py_XSETREF(self->token, Py_NewRef(Py_None));
    Py_XSETREF(self->builder, Py_NewRef(Py_None));
    Py_XSETREF(self->kind, Py_NewRef(Py_None));
    return 0;
error:
    Py_XDECREF(tags);
    return -1;
slow:;
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
    {"__exit__", (PyCFunction)(void (*)(void))core_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef core_members[] = {
    {"_attributes", T_OBJECT, offsetof(TimerCore, attributes), 0, NULL},
    {"_builder", T_OBJECT, offsetof(TimerCore, builder), 0, NULL},
    {"_kind", T_OBJECT, offsetof(TimerCore, kind), 0, NULL},
    {"_name", T_OBJECT, offsetof(TimerCore, name), 0, NULL},
    {"_span", T_OBJECT, offsetof(TimerCore, span), 0, NULL},
    {"_token", T_OBJECT, offsetof(TimerCore, token), 0, NULL},
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

static PyObject *
setup(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {
        "current", "context_var", "span_key", "context_type", "server_span", "timer_span",
        "span_context", "flags", "random_trace_id", "getrandbits", "wall_ns", "internal",
        "slots", "enter_slow", "exit_slow", "finish_timer", "ended_early", "otel_detach", "init_slow",
        NULL,
    };
    PyObject *current, *context_var, *span_key, *context_type, *server_span, *timer_span,
        *span_context, *flags, *getrandbits, *wall_ns, *internal, *slots, *enter_slow,
        *exit_slow, *finish_timer, *ended_early, *otel_detach, *init_slow;
    long random_trace_id;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "$OOOOO!O!O!O!lOOOO!OOOOOO", names, &current, &context_var,
            &span_key, &context_type, &PyType_Type, &server_span, &PyType_Type, &timer_span,
            &PyType_Type, &span_context, &PyTuple_Type, &flags, &random_trace_id, &getrandbits,
            &wall_ns, &internal, &PyTuple_Type, &slots, &enter_slow, &exit_slow, &finish_timer,
            &ended_early, &otel_detach, &init_slow))
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
    S.ready = 1;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"setup", (PyCFunction)(void (*)(void))setup, METH_VARARGS | METH_KEYWORDS,
     "Hand the module the Python objects the fast path works with."},
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
