#!/bin/sh
# One node's share of a toy training job: it reads the environment Yonder gives every node,
# runs its epochs, and leaves its weights in outputs/, which `yonder launch` copies back.
set -e
echo "node $YONDER_NODE_RANK of $YONDER_NUM_NODES ($(cat /opt/train/VERSION)), head $MASTER_ADDR:$MASTER_PORT"
mkdir -p outputs
for epoch in $(seq 1 "$EPOCHS"); do
  echo "epoch $epoch on node $YONDER_NODE_RANK"
  sleep 1
done
echo "weights of node $YONDER_NODE_RANK after $EPOCHS epochs" > outputs/model.txt
