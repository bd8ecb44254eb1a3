"""ServerApp: FedAvg over every SuperNode for N rounds; the final model scored on test subjects."""

import json
import time
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from iomt_flower.task import load_model, load_test

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    config = context.run_config
    rounds, nodes = int(config["num-server-rounds"]), int(config["min-nodes"])
    run_dir, data_dir = str(config["run-dir"]), str(config["data-dir"])
    model = load_model(run_dir, float(config["learning-rate"]))
    initial = ArrayRecord(model.get_weights())
    strategy = FedAvg(
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=nodes,
        min_available_nodes=nodes,
    )
    scores: dict[int, float] = {}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        if server_round not in (0, rounds):
            return None
        model.set_weights(arrays.to_numpy_ndarrays())
        x, y = load_test(run_dir, data_dir)
        _, accuracy = model.evaluate(x, y, batch_size=64, verbose=0)
        scores[server_round] = float(accuracy)
        return MetricRecord({"accuracy": float(accuracy)})

    started = time.monotonic()
    strategy.start(
        grid=grid,
        initial_arrays=initial,
        num_rounds=rounds,
        train_config=ConfigRecord({"lr": float(config["learning-rate"])}),
        evaluate_fn=evaluate,
    )
    result = {
        "accuracy_initial": scores.get(0),
        "accuracy": scores.get(rounds),
        "rounds": rounds,
        "parameters": int(model.count_params()),
        "float32_bytes": int(sum(w.nbytes for w in model.get_weights())),
        "server_wall_s": round(time.monotonic() - started, 1),
    }
    Path(str(config["result-path"])).write_text(json.dumps(result, indent=2) + "\n")
