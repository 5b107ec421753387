"""The learning process's server state between rounds: kept on the worker, or in this process.

TFF's ``process.next(state, client_data)`` sends the whole server state to the worker and takes
the new state back, every round: for the tutorial's GRU(1024) 16 MB each way, serialized and
copied by TFF in this process (0.4-0.7 s a round trip on the busy 2-core machine,
benchmarks/measured/profile_issue26_busy_2core.md), which a plain TensorFlow loop never pays.
With one local worker, :class:`StateOnWorker` runs the same compiled computation through TFF's
executor interface (``create_value``, ``create_struct``, ``create_call``, ``create_selection``,
what TFF's own execution context calls) and keeps the new state on the worker as the next round's
argument: only the round's metrics come back. The state is read back when the loop asks for it
(an evaluation, generated text, a checkpoint, the final model), at most once after each round.
The computation, its arguments and the worker are TFF's path's own, so the rounds compute the
same numbers bit for bit (tests/federated/test_resident.py).

:class:`StateInDriver` is TFF's ``process.next`` as it is: for rounds split over several
workers (each needs the state) and for remote workers, which may restart and lose what they hold.
Both have ``next(client_data) -> metrics`` and ``value``, the state in this process.
"""

from __future__ import annotations


class StateInDriver:
    """The state in this process, sent to the worker and back by ``process.next`` each round."""

    def __init__(self, process, state):
        self._process = process
        self.value = state

    def next(self, client_data: list):
        """One round on ``client_data`` (one dataset per client); TFF's metrics of it."""
        output = self._process.next(self.value, client_data)
        self.value = output.state
        return output.metrics


class StateOnWorker:
    """The state kept on one worker between rounds; ``value`` reads it back when asked.

    ``worker``: the worker's whole-computation context (fedlm.federated.subrounds), whose
    ``executors`` give TFF's executor for a round's cardinalities and whose ``run`` runs a
    coroutine on its loop (so the watchdog can end a call to a lost worker). A round with another
    number of clients gets another executor: the state is then read back and sent to it.
    """

    def __init__(self, process, state, worker):
        import tensorflow_federated as tff

        self._worker = worker
        self._result_type = process.next.type_signature.result  # with TFF's Python containers
        self._comp = tff.backends.native.desugar_and_transform_to_native(process.next)
        # (state name, type), (client data name, type): the computation's two parameters
        self._parameters = tff.structure.to_elements(self._comp.type_signature.parameter)
        self._value = state  # None while the newest state is only on the worker
        self._remote = None  # (executor, the newest state there)
        self._comp_value = None  # (executor, the computation there)

    @property
    def value(self):
        if self._value is None:
            self._value = self._worker.run(self._fetch())
        return self._value

    def next(self, client_data: list):
        """One round on ``client_data`` (one dataset per client); TFF's metrics of it."""
        return self._worker.run(self._next(list(client_data)))

    async def _fetch(self):
        import tensorflow_federated as tff

        value = await self._remote[1].compute()
        return tff.tensorflow.transform_result(
            tff.types.type_to_py_container(value, self._result_type[0])
        )

    async def _next(self, client_data: list):
        import tensorflow_federated as tff

        executor = self._worker.executors.create_executor({tff.CLIENTS: len(client_data)})
        (state_name, state_type), (data_name, data_type) = self._parameters
        state = await self._state_on(executor, state_type)
        data = await executor.create_value(tff.tensorflow.transform_args(client_data), data_type)
        arg = await executor.create_struct(
            tff.structure.Struct([(state_name, state), (data_name, data)])
        )
        if self._comp_value is None or self._comp_value[0] is not executor:
            comp = await executor.create_value(self._comp, self._comp.type_signature)
            self._comp_value = (executor, comp)
        result = await executor.create_call(self._comp_value[1], arg)
        new_state = await executor.create_selection(result, 0)
        metrics = await (await executor.create_selection(result, 1)).compute()
        self._remote, self._value = (executor, new_state), None
        return tff.tensorflow.transform_result(
            tff.types.type_to_py_container(metrics, self._result_type[1])
        )

    async def _state_on(self, executor, state_type):
        """The newest state as a value of ``executor``: the one there, or sent from here."""
        if self._remote is not None and self._remote[0] is executor:
            return self._remote[1]
        if self._value is None:  # on another executor only
            self._value = await self._fetch()
        return await executor.create_value(self._value, state_type)
