"""ClientApp: FedAvg's local step, the whole float32 LSTM-FCN trained with TensorFlow."""

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from iomt_flower.task import load_device, load_model

app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Load the global weights, fit on this device's windows, reply with all the weights."""
    config = context.run_config
    model = load_model(str(config["run-dir"]), float(config["learning-rate"]))
    model.set_weights(msg.content["arrays"].to_numpy_ndarrays())
    partition_id = int(context.node_config["partition-id"])
    x, y = load_device(str(config["run-dir"]), str(config["data-dir"]), partition_id)
    history = model.fit(
        x,
        y,
        epochs=int(config["local-epochs"]),
        batch_size=int(config["batch-size"]),
        verbose=0,
    )
    metrics = MetricRecord(
        {"train_loss": float(history.history["loss"][-1]), "num-examples": len(y)}
    )
    content = RecordDict({"arrays": ArrayRecord(model.get_weights()), "metrics": metrics})
    return Message(content=content, reply_to=msg)
